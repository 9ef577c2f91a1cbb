"""Composition parity with the ``adapters`` library: Stack, Fuse, Parallel and BatchSplit with heads.

Randomised ``seq_bn`` adapters (non-default reduction factors), fusion layers and heads are saved
by one library, loaded by the other, and both must give the same outputs and losses within 1e-5.
These tests use the engine's API (AutoAdapterModel, load_adapter, load_adapter_fusion,
set_active_adapters, Stack/Fuse/Parallel) and fail until the engine provides it.
"""

from __future__ import annotations

import adapters
import pytest
import torch

from .parity_helpers import assert_same_output, batch, engine_model, library_model, randomise

pytestmark = pytest.mark.parity

CONFIGS = {"a": "seq_bn[reduction_factor=4]", "b": "seq_bn[reduction_factor=8]", "c": "seq_bn[reduction_factor=2]"}
FUSE_CONFIGS = {name: "seq_bn[reduction_factor=4]" for name in "abc"}  # fused adapters share one config


def _blocks(lib):
    """The composition classes of one side: the library's or ours."""
    if lib == "theirs":
        return adapters.Stack, adapters.Fuse, adapters.Parallel, adapters.BatchSplit
    import adapters_client

    return adapters_client.Stack, adapters_client.Fuse, adapters_client.Parallel, adapters_client.BatchSplit


def _model(side, folder):
    return library_model(folder) if side == "theirs" else engine_model(folder)


def _save_kwargs(side):
    return {"use_safetensors": True} if side == "theirs" else {}


def _build_and_save(side, folder, out, adapter_configs, heads, fusion, seed):
    """Add + randomise adapters (``heads``: name -> num_labels), a fusion, heads; save them to ``out``."""
    model = _model(side, folder)
    Fuse = _blocks(side)[1]
    for name, config in adapter_configs.items():
        model.add_adapter(name, config=config)
    patterns = [f".adapters.{name}." for name in adapter_configs]
    for name, num_labels in heads.items():
        model.add_classification_head(name, num_labels=num_labels)
        patterns.append(f"heads.{name}.")
    if fusion:
        model.add_adapter_fusion(Fuse(*adapter_configs))
        patterns.append("adapter_fusion_layer")
    randomise(model, patterns, seed=seed, std=0.1)
    for name in adapter_configs:
        model.save_adapter(str(out / name), name, **_save_kwargs(side))
    for name in set(heads) - set(adapter_configs):
        model.save_head(str(out / f"head-{name}"), name, **_save_kwargs(side))
    if fusion:
        model.save_adapter_fusion(str(out / "fusion"), ",".join(adapter_configs), **_save_kwargs(side))
    return model


def _load(side, folder, out, adapter_configs, heads, fusion):
    model = _model(side, folder)
    for name in adapter_configs:
        assert model.load_adapter(str(out / name), **_save_kwargs(side)) == name
    for name in set(heads) - set(adapter_configs):
        model.load_head(str(out / f"head-{name}"), **_save_kwargs(side))
    if fusion:
        model.load_adapter_fusion(str(out / "fusion"), **_save_kwargs(side))
    return model


def _activate(model, side, setup, head=None):
    Stack, Fuse, Parallel, BatchSplit = _blocks(side)
    block = {"stack": lambda: Stack("a", "b"), "fuse": lambda: Fuse("a", "b", "c"),
             "parallel": lambda: Parallel("a", "b"), "gpt2-parallel": lambda: Parallel("a", "b"),
             "parallel-skip": lambda: Parallel("a", "b"),
             "batchsplit": lambda: BatchSplit("a", "b", batch_sizes=[1, 3])}[setup]()
    model.set_active_adapters(block, skip_layers=[0] if setup == "parallel-skip" else None)
    if head is not None:
        model.active_head = head


def _forward(model, labels, kind):
    inputs = batch(kind, size=4)
    with torch.no_grad():
        return model(**inputs, labels=labels)


SCENARIOS = {
    # setup: (backbone, adapter configs, heads name -> num_labels, fusion?, explicit active head)
    "stack": ("bert", dict(CONFIGS, c=None), {"b": 3}, False, None),
    "fuse": ("bert", FUSE_CONFIGS, {"fused": 2}, True, "fused"),
    "parallel": ("bert", dict(CONFIGS, c=None), {"a": 2, "b": 3}, False, None),
    "gpt2-parallel": ("gpt2", dict(CONFIGS, c=None), {"a": 2, "b": 3}, False, None),
    "batchsplit": ("bert", dict(CONFIGS, c=None), {"a": 2, "b": 3}, False, None),
    "parallel-skip": ("bert", dict(CONFIGS, c=None), {"a": 2, "b": 3}, False, None),  # AdapterDrop on layer 0
}
SETUPS = list(SCENARIOS)
MULTI_HEAD = {"parallel", "gpt2-parallel", "batchsplit", "parallel-skip"}


def _scenario(setup):
    kind, configs, heads, fusion, head = SCENARIOS[setup]
    return kind, {k: v for k, v in configs.items() if v is not None}, heads, fusion, head


def _compare(setup, source, target, backbone_dirs, tmp_path):
    kind, configs, heads, fusion, head = _scenario(setup)
    folder = backbone_dirs[kind]
    saved = _build_and_save(source, folder, tmp_path, configs, heads, fusion, seed=21)
    loaded = _load(target, folder, tmp_path, configs, heads, fusion)
    _activate(saved, source, setup, head)
    _activate(loaded, target, setup, head)
    labels = torch.tensor([0, 1, 1, 0])
    out_saved, out_loaded = _forward(saved, labels, kind), _forward(loaded, labels, kind)
    if setup in MULTI_HEAD:
        assert len(out_loaded) == len(out_saved) == 2
        for mine, ref in zip(out_loaded, out_saved):
            assert_same_output(mine, ref)
        torch.testing.assert_close(out_loaded.loss, out_saved.loss, atol=1e-5, rtol=0)
    else:
        assert_same_output(out_loaded, out_saved)
    return out_saved


@pytest.mark.parametrize("setup", SETUPS)
def test_library_composition_loads_in_ours(setup, backbone_dirs, tmp_path):
    _compare(setup, "theirs", "ours", backbone_dirs, tmp_path)


@pytest.mark.parametrize("setup", SETUPS)
def test_our_composition_loads_in_library(setup, backbone_dirs, tmp_path):
    _compare(setup, "ours", "theirs", backbone_dirs, tmp_path)


def test_adapters_change_the_output(backbone_dirs, tmp_path):
    """Guards the suite itself: the randomised stack really differs from the plain backbone + head."""
    kind, configs, heads, fusion, _ = _scenario("stack")
    model = _build_and_save("theirs", backbone_dirs[kind], tmp_path, configs, heads, fusion, seed=21)
    _activate(model, "theirs", "stack")
    with_adapters = _forward(model, None, kind).logits
    model.set_active_adapters(None)
    model.active_head = "b"
    assert not torch.allclose(_forward(model, None, kind).logits, with_adapters, atol=1e-3)
