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
    elif head == "qa":
        model.add_qa_head("sst-2")
    else:
        model.add_tagging_head("sst-2", num_labels=3, id2label={0: "O", 1: "B-X", 2: "I-X"})
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
    with pytest.raises(IncompatibleAdapter, match="no pipeline runs a question_answering head") as refused:
        adapters_client.pipeline(_trained(backbone, head="qa"))
    assert refused.value.details.get("field") == "head"
    with pytest.raises(IncompatibleAdapter, match="classification"):
        adapters_client.TextClassificationPipeline(_trained(backbone, head="tagging"), tokenizer=None)
    with pytest.raises(TypeError):
        adapters_client.pipeline(_trained(backbone))([1, 2])


def test_pipeline_is_exported_as_a_function():
    import adapters_client.pipelines  # noqa: F401

    assert callable(adapters_client.pipeline) and adapters_client.pipeline.__module__ == "adapters_client.pipelines"


# --- tagging heads: one label per word piece ------------------------------------------------------------------------
def test_tagging_heads_label_each_word_piece(backbone):
    from transformers import AutoTokenizer

    model = _trained(backbone, head="tagging")
    tokenizer = AutoTokenizer.from_pretrained(str(backbone))
    texts = ["w1 w2 zz w3", "w4", "w5 w6 w7 w8 w9 w10 w11 w12 w13 w14 w15 w16 w17 w18 w19 w20"]  # zz: [UNK]; truncated
    pipe = adapters_client.pipeline(model, batch_size=2)
    assert isinstance(pipe, adapters_client.TokenClassificationPipeline)
    results = pipe(texts)
    alone = pipe(texts[0])  # unpadded: the same tokens, labels and (within float noise) scores
    assert [{**t, "score": None} for t in alone] == [{**t, "score": None} for t in results[0]]
    assert [t["score"] for t in alone] == pytest.approx([t["score"] for t in results[0]], abs=1e-5)
    labels = ["O", "B-X", "I-X"]
    for text, got in zip(texts, results):
        batch = tokenizer([text], truncation=True, max_length=16, return_tensors="pt")
        with torch.no_grad():
            probs = torch.softmax(model(**batch).logits[0], dim=-1)
        pieces = tokenizer.convert_ids_to_tokens(batch["input_ids"][0].tolist())
        inner = range(1, len(pieces) - 1)  # without [CLS] and [SEP]
        assert [t["token"] for t in got] == [pieces[i] for i in inner] and [t["index"] for t in got] == list(inner)
        assert [t["label"] for t in got] == [labels[int(probs[i].argmax())] for i in inner]
        assert [t["score"] for t in got] == pytest.approx([float(probs[i].max()) for i in inner], abs=1e-5)
        words = text.split()
        assert [text[t["start"]:t["end"]] for t in got] == words[:len(got)]
    assert len(results[2]) == 14 and results[0][2]["token"] == "[UNK]"


# --- LM heads: text generation ----------------------------------------------------------------------------------------
SPECIALS = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # ids 0..4: BART's bos, pad, eos


def _word_tokenizer(pad: bool = True, max_length: int = 64):
    """A GPT-2-like fast tokenizer built in memory: whitespace-split words, WordLevel ids (99 tokens)."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    backend = Tokenizer(models.WordLevel({t: i for i, t in enumerate(SPECIALS + WORDS)}, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.WhitespaceSplit()
    options = {"pad_token": "<pad>"} if pad else {}
    return PreTrainedTokenizerFast(tokenizer_object=backend, bos_token="<s>", eos_token="</s>", unk_token="<unk>",
                                   model_max_length=max_length, **options)


def _lm(arch: str = "gpt2"):
    """A tiny LM with large seeded backbone weights (so generations depend on the prompt) and a random adapter."""
    import zlib

    from .engine_helpers import randomise, tiny_config

    config = tiny_config(arch)
    config.bos_token_id, config.eos_token_id = 0, 2
    torch.manual_seed(0)
    model = adapters_client.AutoAdapterModel.from_config(config).eval()
    with torch.no_grad():
        for name, param in model.named_parameters():
            if param.dim() >= 2:
                param.copy_(torch.randn(param.shape, generator=torch.Generator().manual_seed(zlib.crc32(name.encode())))
                            * 0.3)
    model.add_adapter("lm", config="seq_bn")
    randomise(model.adapter_engine.modules_of("lm"), seed=7, std=0.3)
    (model.add_seq2seq_lm_head if config.is_encoder_decoder else model.add_causal_lm_head)("lm")
    model.set_active_adapters("lm")
    return model


def _alone(model, tokenizer, text: str, **options):
    """The new token ids of ``model.generate`` on one unpadded prompt."""
    ids = torch.tensor([tokenizer(text)["input_ids"]])
    options = {"max_new_tokens": 6, "do_sample": False, "num_beams": 1, **options}
    out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), pad_token_id=tokenizer.pad_token_id
                         if tokenizer.pad_token_id is not None else tokenizer.eos_token_id, **options)
    return out[:, ids.shape[1]:] if not model.config.is_encoder_decoder else out


LM_TEXTS = ["w1 w2 w3", "w4", "w5 w6 w7 w8 w9 w10 w11", "w1 w2 w3 w44 w45"]


@pytest.mark.parametrize("pad", [True, False], ids=["pad-token", "eos-as-pad"])
def test_causal_lm_batches_are_left_padded_and_return_the_continuation(pad):
    model, tokenizer = _lm("gpt2"), _word_tokenizer(pad=pad)
    pipe = adapters_client.pipeline(model, tokenizer=tokenizer, max_new_tokens=6, batch_size=4)
    assert isinstance(pipe, adapters_client.TextGenerationPipeline)
    results = pipe(LM_TEXTS)
    continuations = set()
    for text, got in zip(LM_TEXTS, results):
        new = _alone(model, tokenizer, text)[0].tolist()
        assert got == {"generated_text": " " + tokenizer.decode(new, skip_special_tokens=True)}
        continuations.add(got["generated_text"])
    assert len(continuations) == len(LM_TEXTS)  # the prompts matter (the test can fail)
    assert pipe(LM_TEXTS[2]) == results[2] and pipe(LM_TEXTS[:2], batch_size=1) == results[:2]
    assert pipe(LM_TEXTS[0], return_full_text=True) == {"generated_text": LM_TEXTS[0] + results[0]["generated_text"]}
    assert tokenizer.pad_token_id == (1 if pad else None)  # the caller's tokenizer is left as it was
    from_bos = tokenizer.decode(_alone(model, tokenizer, "<s>")[0], skip_special_tokens=True)
    assert from_bos and pipe("") == {"generated_text": from_bos}  # an empty text starts from bos
    assert pipe([]) == []


def test_causal_lm_defaults_greedy_and_40_new_tokens():
    model, tokenizer = _lm("gpt2"), _word_tokenizer()
    model.generation_config.eos_token_id = None  # no early stop: the default length is visible
    new = _alone(model, tokenizer, "w7 w8", max_new_tokens=40)[0].tolist()
    assert len(new) == 40 and len(set(new)) > 3
    model.generation_config.do_sample = True  # a saved config asking for sampling: the pipeline stays greedy
    got = adapters_client.pipeline(model, tokenizer=tokenizer)("w7 w8")
    assert got == {"generated_text": " " + tokenizer.decode(new, skip_special_tokens=True)}


def test_long_causal_prompts_keep_their_end():
    model, tokenizer = _lm("gpt2"), _word_tokenizer()  # 64 positions: 64 - 40 new tokens leave 24 for the prompt
    prompt = " ".join(WORDS[5:45])
    pipe = adapters_client.pipeline(model, tokenizer=tokenizer)
    assert pipe.max_length == 64
    new = _alone(model, tokenizer, " ".join(WORDS[21:45]), max_new_tokens=40)[0].tolist()
    assert pipe(prompt)["generated_text"] == " " + tokenizer.decode(new, skip_special_tokens=True)


def test_generate_options_pass_through():
    model, tokenizer = _lm("gpt2"), _word_tokenizer()
    pipe = adapters_client.pipeline(model, tokenizer=tokenizer, max_new_tokens=5)
    beams = pipe(["w3 w9", "w11"], num_beams=3, num_return_sequences=2)
    for text, got in zip(["w3 w9", "w11"], beams):
        expected = _alone(model, tokenizer, text, max_new_tokens=5, num_beams=3, num_return_sequences=2)
        assert got == [{"generated_text": " " + tokenizer.decode(row, skip_special_tokens=True)} for row in expected]
    torch.manual_seed(11)
    sampled = pipe("w3 w9", do_sample=True, top_k=0)
    torch.manual_seed(11)
    expected = _alone(model, tokenizer, "w3 w9", max_new_tokens=5, do_sample=True, top_k=0)[0]
    assert sampled["generated_text"] == " " + tokenizer.decode(expected, skip_special_tokens=True)
    sampling = adapters_client.pipeline(model, tokenizer=tokenizer, max_new_tokens=5,
                                        generate_kwargs={"do_sample": True, "top_k": 0})
    torch.manual_seed(11)
    assert sampling("w3 w9") == sampled


@pytest.mark.parametrize("arch", ["bart", "t5"])
def test_seq2seq_lm_generates_from_right_padded_inputs(arch):
    model, tokenizer = _lm(arch), _word_tokenizer()
    pipe = adapters_client.pipeline(model, tokenizer=tokenizer, max_new_tokens=6)
    results = pipe(LM_TEXTS)
    outputs = set()
    for text, got in zip(LM_TEXTS, results):
        expected = _alone(model, tokenizer, text)[0]
        assert got == {"generated_text": tokenizer.decode(expected, skip_special_tokens=True)}
        outputs.add(got["generated_text"])
    assert len(outputs) > 1 and any(outputs)  # the inputs matter (the test can fail)


def test_lm_pipeline_refusals_are_typed():
    from adapters_client.generation import LM_HEAD_TYPES
    from adapters_client.pipelines import TextGenerationPipeline

    assert TextGenerationPipeline.head_types == LM_HEAD_TYPES  # one list of LM head types
    model = _lm("gpt2")
    model.add_classification_head("cls", num_labels=2)
    with pytest.raises(IncompatibleAdapter, match="TextGenerationPipeline supports causal_lm and seq2seq_lm"):
        TextGenerationPipeline(model, _word_tokenizer(), head="cls")
    assert isinstance(adapters_client.pipeline(model, tokenizer=_word_tokenizer(), head="lm"), TextGenerationPipeline)
    with pytest.raises(IncompatibleAdapter, match="no head 'nope'"):
        adapters_client.pipeline(model, tokenizer=_word_tokenizer(), head="nope")
    from adapters_client import Parallel
    from adapters_client.heads.errors import InvalidHead

    model.add_adapter("b", config="seq_bn")
    model.add_causal_lm_head("b")
    model.set_active_adapters(Parallel("lm", "b"))  # one output per branch: model.generate() gives those
    with pytest.raises(IncompatibleAdapter, match="one prediction head"):
        adapters_client.pipeline(model, tokenizer=_word_tokenizer())
    with pytest.raises(InvalidHead, match="Parallel"):
        adapters_client.pipeline(model, tokenizer=_word_tokenizer(), head="lm")("w1")
