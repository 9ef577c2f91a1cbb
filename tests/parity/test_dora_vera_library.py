"""DoRA, VeRA and DVoRA against the adapters library itself (reference virtualenv only)."""

from __future__ import annotations

import pytest
import torch

from adapters_client.configs import load_config, method_name
from tests.client.engine_helpers import randomise, tiny_inputs
from tests.client.test_methods_dora_vera import GOLDEN_BERT


def _library():
    import adapters  # the reference virtualenv: a missing library is a failure, not a skip

    return adapters


def test_seeded_vera_matrices_equal_the_library():
    adapters = _library()
    from adapters_client import AutoAdapterModel

    theirs = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN_BERT))
    theirs.add_adapter("x", config="vera[init_weights_seed=11]")
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN_BERT))
    ours.add_adapter("x", config="vera[init_weights_seed=11]")
    for key in ("lora_A", "lora_B"):
        assert torch.equal(getattr(ours.base_model.shared_parameters["x"], key),
                           theirs.base_model.shared_parameters["x"][key].detach())


@pytest.mark.parametrize("case", ["average", "stack", "parallel", "average_block"])
def test_compositions_equal_the_library(case, tmp_path):
    """VeRA averaging (shared A/B averaged too); Stack, Parallel and Average blocks of DoRA / DVoRA adapters
    (the library rescales with the last adapter's magnitude): the library's output."""
    adapters = _library()
    from adapters.composition import Average as LibAverage
    from adapters.composition import Parallel as LibParallel
    from adapters.composition import Stack as LibStack

    from adapters_client import AutoAdapterModel
    from adapters_client.composition import Average, Parallel, Stack

    config = {"average": "vera", "stack": "dora[alpha=16]", "parallel": "dvora",
              "average_block": "dora[alpha=4]"}[case]
    ours = AutoAdapterModel.from_pretrained(str(GOLDEN_BERT)).eval()
    for name, seed in (("a", 1), ("b", 2)):
        ours.add_adapter(name, config=config)
        randomise(ours.adapter_engine.modules_of(name), seed=seed, std=0.3)
        ours.save_adapter(str(tmp_path / name), name, with_head=False)
    theirs = adapters.AutoAdapterModel.from_pretrained(str(GOLDEN_BERT)).eval()
    for name in ("a", "b"):
        theirs.load_adapter(str(tmp_path / name), use_safetensors=True)
    if case == "average":
        for model in (ours, theirs):
            model.average_adapter("avg", ["a", "b"], weights=[0.3, 0.7])
            model.set_active_adapters("avg")
    else:
        block, lib_block = {"stack": (Stack, LibStack), "parallel": (Parallel, LibParallel),
                            "average_block": (Average, LibAverage)}[case]
        kwargs = {"weights": [0.3, 0.7]} if case == "average_block" else {}
        ours.set_active_adapters(block("a", "b", **kwargs))
        theirs.set_active_adapters(lib_block("a", "b", **kwargs))
    inputs = tiny_inputs()
    with torch.no_grad():
        got, want = ours(**inputs)[0], theirs(**inputs)[0]
        theirs.set_active_adapters(None)
        plain = theirs(**inputs)[0]
    assert got.shape == want.shape
    assert (want[: plain.shape[0]] - plain).abs().max() > 1e-3
    assert torch.allclose(got, want, atol=1e-5)


@pytest.mark.parametrize("spec", ["dora", "vera", "dvora", "dora[r=4,alpha=16,intermediate_lora=True]",
                                  "vera[r=4,vera_d=0.5,vera_b=0.25,dropout=0.1]"])
def test_library_config_dicts_round_trip(spec):
    adapters = _library()
    theirs = adapters.AdapterConfig.load(spec).to_dict()
    ours = load_config(theirs)
    assert ours.to_dict() == theirs
    assert load_config(spec).to_dict() == theirs
    assert method_name(ours) == spec.split("[")[0]
