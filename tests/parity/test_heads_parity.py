"""Head parity with the ``adapters`` library: a head saved by one library loads in the other and
gives the same outputs (and losses) within 1e-5; both write the same head files."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from .parity_helpers import assert_same_output, batch, library_model, our_model, randomise

pytestmark = pytest.mark.parity


def _class_labels(n):
    return lambda inputs: {"labels": torch.arange(inputs["input_ids"].shape[0]) % n}


def _token_labels(n):
    def make(inputs):
        ids = inputs["input_ids"]
        return {"labels": torch.randint(0, n, ids.shape, generator=torch.Generator().manual_seed(9))}
    return make


def _multi_hot(inputs):
    rows = inputs["input_ids"].shape[0]
    return {"labels": (torch.arange(rows * 4).view(rows, 4) % 3 == 0).float()}


def _regression(inputs):
    return {"labels": torch.linspace(-1.0, 2.0, inputs["input_ids"].shape[0])}


def _spans(inputs):
    rows = inputs["input_ids"].shape[0]
    return {"start_positions": torch.arange(rows) + 1, "end_positions": torch.arange(rows) + 3}


def _choices(inputs):
    return {"labels": torch.tensor([2, 0])}


def _lm(inputs):
    return {"labels": inputs["input_ids"].clone()}


# (case id, backbone, how to add the head, labels for the loss, batch size)
CASES = [
    ("bert-classification", "bert", lambda m: m.add_classification_head("h", num_labels=3), _class_labels(3), 4),
    ("bert-regression", "bert", lambda m: m.add_classification_head("h", num_labels=1), _regression, 4),
    ("bert-multilabel", "bert", lambda m: m.add_classification_head("h", num_labels=4, multilabel=True),
     _multi_hot, 4),
    ("bert-pooler-3-layers", "bert",
     lambda m: m.add_classification_head("h", num_labels=2, layers=3, use_pooler=True, activation_function="relu"),
     _class_labels(2), 4),
    ("bert-tagging", "bert", lambda m: m.add_tagging_head("h", num_labels=5, layers=2, activation_function="gelu"),
     _token_labels(5), 4),
    ("bert-multiple-choice", "bert", lambda m: m.add_multiple_choice_head("h", num_choices=3), _choices, 6),
    ("bert-qa", "bert", lambda m: m.add_qa_head("h"), _spans, 4),
    ("bert-masked-lm", "bert", lambda m: m.add_masked_lm_head("h"), _lm, 4),
    ("roberta-classification", "roberta",
     lambda m: m.add_classification_head("h", num_labels=2, id2label={0: "neg", 1: "pos"}), _class_labels(2), 4),
    ("gpt2-classification", "gpt2", lambda m: m.add_classification_head("h", num_labels=3), _class_labels(3), 4),
    ("gpt2-tagging", "gpt2", lambda m: m.add_tagging_head("h", num_labels=4), _token_labels(4), 4),
    ("gpt2-qa", "gpt2", lambda m: m.add_qa_head("h"), _spans, 4),
    ("gpt2-causal-lm", "gpt2", lambda m: m.add_causal_lm_head("h"), _lm, 4),
]
IDS = [case[0] for case in CASES]
# "harness": our heads on a plain HF backbone (head math alone); "engine": adapters_client.AutoAdapterModel.
VIA = ["harness", "engine"]


def _run(model, kind, labels, rows):
    inputs = batch(kind, size=rows)
    with torch.no_grad():
        return model(**inputs, **labels(inputs))


@pytest.mark.parametrize("via", VIA)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_library_head_loads_in_ours(case, via, backbone_dirs, tmp_path):
    _, kind, add, labels, rows = case
    theirs = library_model(backbone_dirs[kind])
    add(theirs)
    randomise(theirs, ["heads.h."], seed=11)
    theirs.save_head(str(tmp_path), "h", use_safetensors=True)
    ours = our_model(backbone_dirs[kind], via)
    assert ours.load_head(str(tmp_path)) == "h"
    assert ours.active_head == "h"
    assert_same_output(_run(ours, kind, labels, rows), _run(theirs, kind, labels, rows))


@pytest.mark.parametrize("via", VIA)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_our_head_loads_in_library(case, via, backbone_dirs, tmp_path):
    _, kind, add, labels, rows = case
    ours = our_model(backbone_dirs[kind], via)
    add(ours)
    randomise(ours, ["heads.h."], seed=12)
    ours.save_head(str(tmp_path), "h")
    theirs = library_model(backbone_dirs[kind])
    theirs.load_head(str(tmp_path), use_safetensors=True)
    assert theirs.active_head == "h"
    assert_same_output(_run(ours, kind, labels, rows), _run(theirs, kind, labels, rows))


@pytest.mark.parametrize("via", VIA)
@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_both_write_the_same_head_files(case, via, backbone_dirs, tmp_path):
    _, kind, add, _, _ = case
    theirs, ours = library_model(backbone_dirs[kind]), our_model(backbone_dirs[kind], via)
    add(theirs)
    add(ours)
    theirs.save_head(str(tmp_path / "theirs"), "h", use_safetensors=True)
    ours.save_head(str(tmp_path / "ours"), "h")
    documents = [json.loads((tmp_path / side / "head_config.json").read_text()) for side in ("theirs", "ours")]
    for key in ("config", "hidden_size", "model_class", "model_type", "name"):
        assert documents[1][key] == documents[0][key], key
    shapes = [{k: tuple(v.shape) for k, v in load_file(str(tmp_path / side / "model_head.safetensors")).items()}
              for side in ("theirs", "ours")]
    assert shapes[1] == shapes[0]


@pytest.mark.parametrize("via", VIA)
@pytest.mark.parametrize("kind", ["bert", "gpt2"])
def test_dropout_placement_matches_in_training(kind, via, backbone_dirs, tmp_path):
    """Heads in training mode, same seed: equal outputs only if dropout sits where the library puts it."""
    theirs = library_model(backbone_dirs[kind])
    theirs.add_classification_head("h", num_labels=3, layers=3)
    randomise(theirs, ["heads.h."], seed=13)
    theirs.save_head(str(tmp_path), "h", use_safetensors=True)
    ours = our_model(backbone_dirs[kind], via)
    ours.load_head(str(tmp_path))
    outputs = []
    for model in (ours, theirs):
        model.heads.train()
        torch.manual_seed(99)
        with torch.no_grad():
            outputs.append(_run(model, kind, _class_labels(3), 4))
    assert_same_output(*outputs)
    torch.manual_seed(100)
    with torch.no_grad():
        other = _run(ours, kind, _class_labels(3), 4)
    assert ours.heads.h[0].p == theirs.heads.h[0].p > 0
    # a different seed drops other units: the comparison above is not vacuous
    assert not torch.allclose(other.logits, outputs[0].logits)
