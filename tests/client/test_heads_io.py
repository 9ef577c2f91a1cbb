"""Saving and loading heads: the library's file format, strict validation, typed errors."""

from __future__ import annotations

import json
import os

import pytest
import torch
from safetensors.torch import load_file, save_file

from adapters_client.errors import IncompatibleAdapter
from adapters_client.heads import InvalidHead

from .test_heads import ids, make_bert, make_gpt2


def _randomise(module, seed=7):
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for param in module.parameters():
            param.copy_(torch.randn(param.shape, generator=generator) * 0.5)


def test_save_writes_library_format(tmp_path):
    model = make_bert()
    model.add_classification_head("sst", num_labels=3, id2label={0: "a", 1: "b", 2: "c"})
    model.save_head(str(tmp_path / "new" / "sst"), "sst")  # parent folders are created
    folder = tmp_path / "new" / "sst"
    document = json.loads((folder / "head_config.json").read_text())
    assert document["config"] == {
        "activation_function": "tanh", "bias": True, "dropout_prob": None, "head_type": "classification",
        "label2id": {"a": 0, "b": 1, "c": 2}, "layers": 2, "num_labels": 3, "use_pooler": False,
    }
    assert document["model_class"] == "BertAdapterModel" and document["model_type"] == "bert"
    assert document["name"] == "sst" and document["hidden_size"] == 32
    weights = load_file(str(folder / "model_head.safetensors"))
    assert sorted(weights) == ["heads.sst.1.bias", "heads.sst.1.weight", "heads.sst.4.bias", "heads.sst.4.weight"]


@pytest.mark.parametrize("adder", [
    lambda m: m.add_classification_head("h", num_labels=3),
    lambda m: m.add_multilabel_classification_head("h", num_labels=4, layers=3),
    lambda m: m.add_tagging_head("h", num_labels=5, layers=2, activation_function="relu"),
    lambda m: m.add_multiple_choice_head("h", num_choices=2),
    lambda m: m.add_qa_head("h"),
    lambda m: m.add_masked_lm_head("h"),
])
def test_round_trip_gives_same_outputs(tmp_path, adder):
    source, target = make_bert(), make_bert()  # same backbone weights (same seed)
    adder(source)
    _randomise(source.heads)
    source.save_head(str(tmp_path), "h")
    assert target.load_head(str(tmp_path), load_as="copy") == "copy"
    assert target.active_head == "copy"
    assert target.get_head_config("copy") == source.get_head_config("h")
    x = ids(batch=4)
    expected, got = source(x, head="h"), target(x)
    for key in expected.keys():
        if key != "hidden_states":
            torch.testing.assert_close(got[key], expected[key])


def test_causal_lm_round_trip_keeps_tie(tmp_path):
    source, target = make_gpt2(), make_gpt2()
    source.add_causal_lm_head("lm")
    _randomise(source.heads.lm[0])
    source.save_head(str(tmp_path), "lm")
    weights = load_file(str(tmp_path / "model_head.safetensors"))
    assert "heads.lm.3.weight" in weights and "heads.lm.3.bias" in weights
    target.load_head(str(tmp_path))
    assert target.heads.lm[3].weight is target.base_model.wte.weight
    x = ids()
    torch.testing.assert_close(target(x).logits, source(x).logits)
    del weights["heads.lm.3.weight"]  # a file without the tied copy still loads
    save_file(weights, str(tmp_path / "model_head.safetensors"))
    assert make_gpt2().load_head(str(tmp_path)) == "lm"


def test_custom_id2label_on_load(tmp_path):
    source = make_bert()
    source.add_classification_head("c", num_labels=2)
    source.save_head(str(tmp_path), "c")
    target = make_bert()
    target.load_head(str(tmp_path), id2label={0: "no", 1: "yes"})
    assert target.get_labels("c") == ["no", "yes"]


def _saved(tmp_path, num_labels=3):
    model = make_bert()
    model.add_classification_head("c", num_labels=num_labels)
    model.save_head(str(tmp_path), "c")
    return tmp_path / "model_head.safetensors"


def _rewrite(path, change):
    weights = load_file(str(path))
    change(weights)
    save_file(weights, str(path))


def test_wrong_shape_names_the_key(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, lambda w: w.update({"heads.c.4.weight": torch.zeros(5, 32)}))
    target = make_bert()
    with pytest.raises(IncompatibleAdapter) as info:
        target.load_head(str(tmp_path))
    assert "heads.c.4.weight" in str(info.value) and info.value.code == "incompatible_adapter"
    assert "c" not in target.heads  # nothing half-loaded


def test_missing_unexpected_and_non_finite_keys(tmp_path):
    path = _saved(tmp_path)
    _rewrite(path, lambda w: w.pop("heads.c.1.bias"))
    with pytest.raises(IncompatibleAdapter, match="heads.c.1.bias"):
        make_bert().load_head(str(tmp_path))
    path = _saved(tmp_path)
    _rewrite(path, lambda w: w.update({"heads.c.9.weight": torch.zeros(2)}))
    with pytest.raises(IncompatibleAdapter, match="heads.c.9.weight"):
        make_bert().load_head(str(tmp_path))
    path = _saved(tmp_path)
    _rewrite(path, lambda w: w["heads.c.1.weight"].__setitem__((0, 0), float("nan")))
    with pytest.raises(IncompatibleAdapter, match="non-finite"):
        make_bert().load_head(str(tmp_path))


def test_other_backbone_damaged_file_and_pickles_are_refused(tmp_path):
    _saved(tmp_path)
    with pytest.raises(IncompatibleAdapter, match="gpt2"):
        make_gpt2().load_head(str(tmp_path))
    (tmp_path / "model_head.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(IncompatibleAdapter, match="Damaged"):
        make_bert().load_head(str(tmp_path))
    os.remove(tmp_path / "model_head.safetensors")
    (tmp_path / "pytorch_model_head.bin").write_bytes(b"pickle")
    with pytest.raises(IncompatibleAdapter, match="allow_pickle"):
        make_bert().load_head(str(tmp_path))


def test_folder_without_head_and_unknown_names(tmp_path):
    model = make_bert()
    assert model.load_head(str(tmp_path)) is None
    with pytest.raises(InvalidHead):
        model.save_head(str(tmp_path), "nope")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "head_config.json").write_text(json.dumps({"name": "x", "config": {"head_type": "telepathy"}}))
    save_file({}, str(bad / "model_head.safetensors"))
    with pytest.raises(IncompatibleAdapter, match="telepathy"):
        model.load_head(str(bad))


def test_pickled_head_loads_only_when_asked(tmp_path):
    source = make_bert()
    source.add_classification_head("c", num_labels=2)
    _randomise(source.heads)
    source.save_head(str(tmp_path), "c")
    weights = load_file(str(tmp_path / "model_head.safetensors"))
    os.remove(tmp_path / "model_head.safetensors")
    torch.save(weights, str(tmp_path / "pytorch_model_head.bin"))
    with pytest.raises(IncompatibleAdapter):
        make_bert().load_head(str(tmp_path))
    target = make_bert()
    assert target.load_head(str(tmp_path), allow_pickle=True) == "c"
    x = ids()
    torch.testing.assert_close(target(x).logits, source(x).logits)
