"""A forward that raises leaves no forward state behind: the next call, through the base model or through
AdapterModel.forward, starts from a fresh ForwardContext (a dead forward's Parallel replication state would
otherwise make the next Parallel call skip its replication)."""

from __future__ import annotations

import pytest
import torch

from adapters_client import Parallel
from adapters_client.context import ForwardContext

from .engine_helpers import randomise, tiny_inputs, tiny_model


def _parallel_model(arch: str):
    model = tiny_model(arch)
    for n, name in enumerate(("a", "b")):
        model.add_adapter(name, config="seq_bn")
        randomise(model.get_adapter(name), seed=30 + n)
    model.set_active_adapters(Parallel("a", "b"))
    return model


def _raise_once(module):
    def hook(*_):
        handle.remove()
        raise RuntimeError("boom in the middle of the forward")
    handle = module.register_forward_pre_hook(hook)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_a_forward_that_raises_leaves_no_state_behind(arch):
    model = _parallel_model(arch)
    reference = _parallel_model(arch)
    inputs = tiny_inputs(batch=2)
    layers = model.adapter_engine.layers()
    with torch.no_grad():
        expected = reference.base_model(**inputs)[0]
        assert expected.shape[0] == 4  # Parallel of two: the batch replicated
        _raise_once(layers[1])
        with pytest.raises(RuntimeError, match="boom"):
            model.base_model(**inputs)  # the pre-hook opened the forward context itself
        assert ForwardContext.current() is None
        model(**inputs)  # AdapterModel.forward opens (and restores) a context of its own
        assert ForwardContext.current() is None
        torch.testing.assert_close(model.base_model(**inputs)[0], expected, atol=1e-6, rtol=0)

        _raise_once(layers[0])
        with pytest.raises(RuntimeError, match="boom"):
            model(**inputs)
        assert ForwardContext.current() is None
        torch.testing.assert_close(model.base_model(**inputs)[0], expected, atol=1e-6, rtol=0)


def test_the_error_of_the_forward_is_what_the_caller_sees(recwarn):
    """The end-of-forward audit (every site ran) is skipped after an error: it neither replaces the forward's
    own error nor fails inside the always-called hook (which torch would report as a silenced exception)."""
    model = _parallel_model("bert")
    model.adapter_engine._audited.clear()  # the next forward is audited
    _raise_once(model.adapter_engine.layers()[0])
    with torch.no_grad(), pytest.raises(RuntimeError, match="boom"):
        model.base_model(**tiny_inputs(batch=2))
    assert not [w for w in recwarn if "silenced" in str(w.message)], [str(w.message) for w in recwarn]


def test_loading_a_houlsby_initialised_bottleneck_finishes():
    """init_weights="houlsby" draws with trunc_normal_, which redraws until every value is in bounds; under
    overwritten_init (loading) the draws do nothing, so the init must be skipped there, not looped on."""
    import threading

    from adapters_client.configs import load_config
    from adapters_client.methods.bottleneck.modules import BottleneckAdapter
    from adapters_client.weights import overwritten_init

    config = load_config("seq_bn[init_weights=houlsby]")
    done = []

    def build():
        with overwritten_init():
            done.append(BottleneckAdapter("x", 32, 8, config))

    worker = threading.Thread(target=build, daemon=True)
    worker.start()
    worker.join(timeout=60)
    assert done, "building a houlsby-initialised adapter under overwritten_init did not finish"
    built = BottleneckAdapter("x", 32, 8, config)  # outside loading: the real truncated-normal init
    assert float(built.adapter_up.weight.abs().max()) <= 2e-2 and float(built.adapter_up.weight.abs().sum()) > 0
