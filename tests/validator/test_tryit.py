"""The try-it task's work, in-process: a valid version's adapter on its cached backbone, labels with scores."""

from __future__ import annotations

import json

import pytest

from registry.models import AdapterVersion
from tests.registry.upload_helpers import hub_dirs, maintainer_setup, post_upload  # noqa: F401
from tests.validator.factories import make_adapter

pytestmark = pytest.mark.django_db


@pytest.fixture
def valid_version(request, client, hub_dirs, settings, backbone_dir, tmp_path):  # noqa: F811
    head = getattr(request, "param", "classification")
    labels = {0: "negative", 1: "positive"} if head == "classification" else {0: "O", 1: "B-X"}
    folder = make_adapter(backbone_dir, tmp_path / "adapter", name="sst-2", head=head,
                          head_kwargs={"id2label": labels})
    return _valid_upload(client, settings, tmp_path, "tiny/bert", backbone_dir, folder)


def _valid_upload(client, settings, tmp_path, model_name: str, backbone, folder) -> AdapterVersion:
    """``folder`` uploaded for the backbone ``model_name`` (served from the folder ``backbone``), marked valid."""
    path = tmp_path / "backbones.json"
    path.write_text(json.dumps({model_name: {"source": "folder", "path": str(backbone)}}))
    settings.HUB_VALIDATOR_BACKBONES = str(path)
    _, _, token = maintainer_setup()
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert post_upload(client, files, token=token, model_name=model_name).status_code == 201
    version = AdapterVersion.objects.get()
    version.status = "valid"
    version.save()
    return version


def test_try_returns_every_label_with_scores_and_leaves_the_backbone_clean(valid_version):
    from validator.loading import default_cache
    from validator.tryit import run_try

    answer = run_try(valid_version.pk, "w1 w2 w3")
    labels = answer["labels"]
    assert sorted(item["label"] for item in labels) == ["negative", "positive"]
    assert abs(sum(item["score"] for item in labels) - 1.0) < 1e-3
    assert labels[0]["score"] >= labels[1]["score"]
    again = run_try(valid_version.pk, "w1 w2 w3")
    assert again == answer  # deterministic, and the cached backbone carries nothing over
    for loaded in default_cache()._entries.values():
        assert not loaded.model.adapters_config and len(loaded.model.heads) == 0


@pytest.mark.parametrize("valid_version", ["tagging"], indirect=True)
def test_try_on_a_tagging_head_labels_each_word_piece(valid_version, backbone_dir, tmp_path):
    import torch
    from transformers import AutoTokenizer

    from adapters_client import AutoAdapterModel
    from validator.tryit import run_try

    model = AutoAdapterModel.from_pretrained(str(backbone_dir)).eval()
    model.load_adapter(str(tmp_path / "adapter"), set_active=True)  # the uploaded files
    with torch.no_grad():
        probs = model(**AutoTokenizer.from_pretrained(str(backbone_dir))(["w1 zz w3"], return_tensors="pt"))
        probs = probs.logits[0].softmax(-1)[1:-1]  # without [CLS] and [SEP]
    tokens = run_try(valid_version.pk, "w1 zz w3")["tokens"]
    assert [t["token"] for t in tokens] == ["w1", "[UNK]", "w3"]
    assert [t["label"] for t in tokens] == [("O", "B-X")[int(i)] for i in probs.argmax(-1)]
    assert [t["score"] for t in tokens] == pytest.approx(probs.max(-1).values.tolist(), abs=1e-4)


def test_try_refuses_a_version_that_is_not_valid(valid_version):
    from validator.errors import UsageError
    from validator.tryit import run_try

    valid_version.status = "rejected"
    valid_version.save()
    with pytest.raises(UsageError, match="not a valid"):
        run_try(valid_version.pk, "w1")


SPECIALS = ["<s>", "<unk>", "</s>"]  # bos 0, eos 2; no pad token (the worker pads with eos)
WORDS = [f"w{i}" for i in range(96)]


def _save_gpt2_backbone(folder):
    """A tiny GPT-2 with large seeded weights (generations depend on the prompt) and a word-level fast tokenizer."""
    import zlib

    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import AutoModel, GPT2Config, PreTrainedTokenizerFast

    config = GPT2Config(n_embd=32, n_layer=2, n_head=2, n_positions=64, vocab_size=99, bos_token_id=0, eos_token_id=2)
    model = AutoModel.from_config(config)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                generator = torch.Generator().manual_seed(zlib.crc32(name.encode()))
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.save_pretrained(str(folder))
    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIALS + WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                            model_max_length=64).save_pretrained(str(folder))
    return folder


def _causal_lm_adapter(backbone, out):
    import torch

    from adapters_client import AutoAdapterModel

    torch.manual_seed(0)  # the head's initial weights
    model = AutoAdapterModel.from_pretrained(str(backbone))
    model.add_adapter("story", config="seq_bn")
    generator = torch.Generator().manual_seed(5)
    with torch.no_grad():
        for module in model.get_adapter("story"):
            for param in module.parameters():
                param.copy_(torch.randn(param.shape, generator=generator) * 0.3)
    model.add_causal_lm_head("story")
    model.save_adapter(str(out), "story", with_head=True)
    return out


@pytest.fixture
def lm_version(client, hub_dirs, settings, tmp_path):  # noqa: F811
    backbone = _save_gpt2_backbone(tmp_path / "tiny-gpt2")
    folder = _causal_lm_adapter(backbone, tmp_path / "adapter")
    return _valid_upload(client, settings, tmp_path, "tiny/gpt2", backbone, folder), backbone, folder


def _argmax_continuation(backbone, adapter, prompt_ids: list, steps: int) -> list:
    """Greedy decoding by full forwards (no cache, no generate()), stopping at eos."""
    import torch

    from adapters_client import AutoAdapterModel

    model = AutoAdapterModel.from_pretrained(str(backbone)).eval()
    model.load_adapter(str(adapter), set_active=True)
    ids, new = list(prompt_ids), []
    with torch.no_grad():
        for _ in range(steps):
            token = int(model(input_ids=torch.tensor([ids])).logits[0, -1].argmax())
            if token == 2:
                break
            ids.append(token)
            new.append(token)
    return new


def test_try_on_a_causal_lm_head_returns_a_greedy_continuation(lm_version):
    from validator.loading import default_cache
    from validator.tasks import try_adapter
    from validator.tryit import MAX_NEW_TOKENS, run_try

    version, backbone, folder = lm_version
    answers = {text: run_try(version.pk, text) for text in ("w1 w2 w3", "w40 w9")}
    for text, answer in answers.items():
        prompt = [len(SPECIALS) + int(w[1:]) for w in text.split()]
        new = _argmax_continuation(backbone, folder, prompt, MAX_NEW_TOKENS)
        words = [f" w{t - len(SPECIALS)}" for t in new if t >= len(SPECIALS)]  # special tokens are not shown
        assert words and answer == {"generated_text": "".join(words)}
    assert len({a["generated_text"] for a in answers.values()}) == 2  # the prompt matters
    assert try_adapter(version.pk, "w1 w2 w3") == answers["w1 w2 w3"]  # the task's answer, unchanged
    for loaded in default_cache()._entries.values():
        assert not loaded.model.adapters_config and len(loaded.model.heads) == 0


def test_heads_the_box_cannot_run_are_refused_with_a_message(valid_version, backbone_dir):
    from adapters_client import AutoAdapterModel
    from validator.errors import UsageError
    from validator.tasks import try_adapter
    from validator.tryit import _predict

    model = AutoAdapterModel.from_pretrained(str(backbone_dir))
    model.add_qa_head("qa")
    with pytest.raises(UsageError, match="cannot run .*question_answering"):
        _predict(model, None, "w1 w2", "qa")
    valid_version.status = "rejected"
    valid_version.save()
    assert "not a valid" in try_adapter(valid_version.pk, "w1")["error"]  # an answer the page shows, not a failure
