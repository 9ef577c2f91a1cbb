"""adapters_client.pipeline: texts -> labels and scores, batched and truncated, from a model or an identifier."""

from __future__ import annotations

import pytest
import torch

import adapters_client
from adapters_client import IncompatibleAdapter
from adapters_client.errors import TokenizerUnavailable
from adapters_client.hub_api import HubClient

from .engine_helpers import tiny_model
from .fake_hub import FakeHub

WORDS = [f"w{i}" for i in range(94)]
TEXTS = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10 w11", "w12 w13", " ".join(WORDS[:40])]
DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


@pytest.fixture
def backbone(tmp_path):
    """A tiny BERT and its word-level tokenizer (99 tokens, at most 16 per input) saved in one folder."""
    from transformers import BertTokenizer

    folder = tmp_path / "tiny-bert"
    tiny_model().base_model.save_pretrained(folder)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", *WORDS]) + "\n")
    BertTokenizer(str(vocab), model_max_length=16).save_pretrained(folder)
    return folder


def _trained(folder, head="classification"):
    model = adapters_client.AutoAdapterModel.from_pretrained(str(folder))
    model.add_adapter("sst-2", config="seq_bn[reduction_factor=4]")
    if head == "classification":
        model.add_classification_head("sst-2", num_labels=3, id2label={0: "neg", 1: "neutral", 2: "pos"})
    elif head == "multilabel":
        model.add_multilabel_classification_head("sst-2", num_labels=2, id2label={0: "a", 1: "b"})
    else:
        model.add_tagging_head("sst-2", num_labels=2)
    torch.manual_seed(3)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "adapters." in name or "heads." in name:
                param.normal_(std=0.5)
    model.set_active_adapters("sst-2")
    return model.eval()


def _expected(model, tokenizer, text, activation=torch.softmax):
    batch = tokenizer([text], truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits[0]
    return activation(logits, dim=-1) if activation is torch.softmax else torch.sigmoid(logits)


@pytest.mark.parametrize("device", DEVICES)
def test_labels_and_scores_match_the_model(backbone, device):
    from transformers import AutoTokenizer

    model = _trained(backbone)
    tokenizer = AutoTokenizer.from_pretrained(str(backbone))
    expected = [_expected(model, tokenizer, t) for t in TEXTS]
    pipe = adapters_client.pipeline(model, device=device, batch_size=2)
    assert pipe.device.type == device and pipe.max_length == 16
    results = pipe(TEXTS)
    names = ["neg", "neutral", "pos"]
    for got, probs in zip(results, expected):
        assert got["label"] == names[int(probs.argmax())]
        assert got["score"] == pytest.approx(float(probs.max()), abs=1e-5)
    single = pipe(TEXTS[2])
    assert single == results[2]
    every = pipe(TEXTS[0], top_k=None)
    assert [e["label"] for e in every] == [names[i] for i in expected[0].argsort(descending=True).tolist()]
    assert sum(e["score"] for e in every) == pytest.approx(1.0, abs=1e-5)
    assert len(pipe(TEXTS[0], top_k=2)) == 2


def test_batching_keeps_order_and_values(backbone):
    pipe = adapters_client.pipeline(_trained(backbone), top_k=None)
    one_by_one = [pipe.scores([t])[0] for t in TEXTS]
    batched = pipe.scores(TEXTS, batch_size=3)
    assert torch.allclose(torch.tensor(batched), torch.tensor(one_by_one), atol=1e-5)


def test_long_inputs_are_truncated(backbone):
    model = _trained(backbone)
    pipe = adapters_client.pipeline(model, max_length=8)
    long_text = " ".join(WORDS * 3)
    from transformers import AutoTokenizer

    batch = AutoTokenizer.from_pretrained(str(backbone))([long_text], truncation=True, max_length=8,
                                                         return_tensors="pt")
    with torch.no_grad():
        probs = torch.softmax(model(**batch).logits[0], dim=-1)
    assert pipe(long_text)["score"] == pytest.approx(float(probs.max()), abs=1e-5)


def test_multilabel_heads_score_each_label(backbone):
    from transformers import AutoTokenizer

    model = _trained(backbone, head="multilabel")
    probs = _expected(model, AutoTokenizer.from_pretrained(str(backbone)), TEXTS[0], activation=torch.sigmoid)
    result = adapters_client.pipeline(model, top_k=None)(TEXTS[0])
    assert {r["label"]: round(r["score"], 5) for r in result} == {"a": round(float(probs[0]), 5),
                                                                 "b": round(float(probs[1]), 5)}


def test_from_a_hub_identifier(backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADAPTERS_OFFLINE", raising=False)
    model = _trained(backbone)
    model.save_adapter(str(tmp_path / "out"), "sst-2")
    hub = FakeHub().start()
    try:
        hub.add_version("sentiment/sst-2@demo", {p.name: p.read_bytes() for p in (tmp_path / "out").iterdir()},
                        model_name=str(backbone))
        pipe = adapters_client.pipeline("sentiment/sst-2@demo", hub=HubClient(base_url=hub.url))
    finally:
        hub.stop()
    assert pipe(TEXTS) == adapters_client.pipeline(model)(TEXTS)


def test_tokenizer_and_head_errors_are_typed(backbone, tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    model = _trained(backbone)
    model.config._name_or_path = str(tmp_path / "gone")  # the backbone folder was moved away
    with pytest.raises(TokenizerUnavailable) as info:
        adapters_client.pipeline(model)
    assert info.value.code == "tokenizer_unavailable" and str(tmp_path / "gone") in str(info.value)
    with pytest.raises(TokenizerUnavailable):
        adapters_client.pipeline(model, tokenizer="no-such-org/no-such-tokenizer")
    model.config._name_or_path = ""
    with pytest.raises(TokenizerUnavailable, match="tokenizer="):
        adapters_client.pipeline(model)
    assert adapters_client.pipeline(model, tokenizer=str(backbone))(TEXTS[0])["label"] in {"neg", "neutral", "pos"}
    with pytest.raises(IncompatibleAdapter, match="classification"):
        adapters_client.pipeline(_trained(backbone, head="tagging"))
    with pytest.raises(TypeError):
        adapters_client.pipeline(_trained(backbone))([1, 2])


def test_pipeline_is_exported_as_a_function():
    import adapters_client.pipelines  # noqa: F401

    assert callable(adapters_client.pipeline) and adapters_client.pipeline.__module__ == "adapters_client.pipelines"
