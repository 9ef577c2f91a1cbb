"""Fuse in eval mode (adapters_client/methods/bottleneck/fusion.py): the default "folded" path (the
fusion's projections folded into the adapters' up-projections) and the "library_order" path (the
library's scores, V applied after mixing, no unused adapter outputs) give the unfolded computation's outputs,
fusion attentions and gradients within 1e-5 in float32; the folded matrices follow weight changes; the
unfolded path runs wherever a folded constant would need a gradient."""

from __future__ import annotations

import pytest
import torch

from adapters_client import Fuse, Stack
from adapters_client.configs import DynamicAdapterFusionConfig, StaticAdapterFusionConfig, load_config
from adapters_client.methods.bottleneck import fusion as folding
from adapters_client.errors import InvalidAdapterConfig
from adapters_client.methods.bottleneck.modules import BottleneckAdapter, FusionLayer
from tests.client.engine_helpers import hidden, randomise, tiny_inputs, tiny_model

HIDDEN = 32
TOL = dict(atol=1e-5, rtol=1e-5)

FUSION_CONFIGS = {
    "dynamic": DynamicAdapterFusionConfig(),
    "static": StaticAdapterFusionConfig(),
    "dynamic-random-value": DynamicAdapterFusionConfig(value_initialized=False),
    "residual_before": DynamicAdapterFusionConfig(residual_before=True, value_initialized=False),
    "static-residual_before": StaticAdapterFusionConfig(residual_before=True),
    "temperature": DynamicAdapterFusionConfig(temperature=True),
    "value_after_softmax": DynamicAdapterFusionConfig(value_before_softmax=False, value_initialized=False),
    "no-query": DynamicAdapterFusionConfig(query=False),
    "no-key": DynamicAdapterFusionConfig(key=False),
    "no-projections": DynamicAdapterFusionConfig(query=False, key=False, value=False),
}

ADAPTER_SETS = {
    # one shape and activation: the down-projections run as one product
    "same": ["seq_bn", "seq_bn", "seq_bn"],
    # other bottleneck sizes, learned and per-channel scaling, an LN before the down-projection, two activations
    "mixed": ["seq_bn[reduction_factor=4]", "seq_bn[reduction_factor=8,scaling=learned]",
              "double_seq_bn[reduction_factor=2,scaling=channel,ln_before=True]"],
    "parallel": ["par_bn", "par_bn[reduction_factor=4]"],
}


def _build(specs, fusion_config, seed=0, std=0.1, mode="folded"):
    adapters = []
    for i, spec in enumerate(specs):
        config = load_config(spec)
        adapters.append(BottleneckAdapter(f"a{i}", HIDDEN, int(HIDDEN // config.reduction_factor), config).eval())
    fusion = FusionLayer(fusion_config, HIDDEN, 0.1).eval()
    fusion.fold_mode = mode
    randomise(adapters + [fusion], seed=seed, std=std)
    return adapters, fusion


def _unfolded(adapters, fusion, x, query, residual):
    ups = torch.stack([adapter(x, residual)[2] for adapter in adapters]).permute(1, 2, 0, 3)
    return fusion(query, ups, ups, residual)


def _inputs(seed=3):
    generator = torch.Generator().manual_seed(seed)
    return [torch.randn(2, 5, HIDDEN, generator=generator) for _ in range(3)]


@pytest.mark.parametrize("mode", ["folded", "library_order"])
@pytest.mark.parametrize("adapter_set", list(ADAPTER_SETS))
@pytest.mark.parametrize("fusion_name", list(FUSION_CONFIGS))
def test_eval_paths_equal_unfolded(adapter_set, fusion_name, mode, monkeypatch):
    adapters, fusion = _build(ADAPTER_SETS[adapter_set], FUSION_CONFIGS[fusion_name], mode=mode)
    x, query, residual = _inputs()
    calls = []
    with torch.no_grad():
        expected, expected_probs = _unfolded(adapters, fusion, x, query, residual)
        monkeypatch.setattr(folding, "_run_folded", _spy(folding._run_folded, calls))
        folded = folding.fused_forward(fusion, adapters, x, query, residual)
    assert folded is not None, "an eval-mode path must apply in eval mode without gradients"
    assert len(calls) == (mode == "folded")
    output, probs = folded
    assert output.shape == expected.shape and probs.shape == expected_probs.shape == (2, 5, len(adapters))
    torch.testing.assert_close(output, expected, **TOL)
    torch.testing.assert_close(probs, expected_probs, **TOL)
    assert not torch.allclose(output, residual, atol=1e-3)  # the fusion really contributes


def _spy(function, calls):
    def spy(*args, **kwargs):
        calls.append(1)
        return function(*args, **kwargs)
    return spy


def test_modes_are_checked(monkeypatch):
    config = FUSION_CONFIGS["dynamic"]
    monkeypatch.delenv(folding.MODE_ENV, raising=False)
    assert FusionLayer(config, HIDDEN, 0.0).fold_mode == "folded"
    monkeypatch.setenv(folding.MODE_ENV, "library_order")
    assert FusionLayer(config, HIDDEN, 0.0).fold_mode == "library_order"
    monkeypatch.setenv(folding.MODE_ENV, "fastest")
    with pytest.raises(InvalidAdapterConfig):
        FusionLayer(config, HIDDEN, 0.0)
    monkeypatch.delenv(folding.MODE_ENV)
    model, fusion_name = _fused_model()
    assert folding.set_fuse_mode(model, "off") == 2
    assert {m.fold_mode for m in model.adapter_engine.fusion_modules(fusion_name)} == {"off"}
    with pytest.raises(InvalidAdapterConfig) as error:
        folding.set_fuse_mode(model, "fast")
    assert error.value.field == "mode"


def test_folded_matrices_follow_weight_changes():
    adapters, fusion = _build(ADAPTER_SETS["mixed"], FUSION_CONFIGS["dynamic-random-value"])
    x, query, residual = _inputs()
    with torch.no_grad():
        first, _ = folding.fused_forward(fusion, adapters, x, query, residual)
        # copy_ under no_grad (what load_state_dict and optimizers do): the version counter moves
        fusion.key.weight.copy_(fusion.key.weight.flip(0))
        adapters[1].adapter_up.weight.mul_(-2.0)
        adapters[2].scaling.add_(0.5)
        second, _ = folding.fused_forward(fusion, adapters, x, query, residual)
        expected, _ = _unfolded(adapters, fusion, x, query, residual)
    assert not torch.allclose(first, second, atol=1e-3)
    torch.testing.assert_close(second, expected, **TOL)

    # a new tensor behind the parameter (``.data =``, ``.to()``)
    with torch.no_grad():
        adapters[0].adapter_down[0].weight.data = torch.randn_like(adapters[0].adapter_down[0].weight) * 0.1
        third, _ = folding.fused_forward(fusion, adapters, x, query, residual)
        expected, _ = _unfolded(adapters, fusion, x, query, residual)
    torch.testing.assert_close(third, expected, **TOL)

    # in-place writes through .data are invisible to the version counter: clear_folded() rebuilds
    with torch.no_grad():
        fusion.query.weight.data.mul_(3.0)
        stale, _ = folding.fused_forward(fusion, adapters, x, query, residual)
        expected, _ = _unfolded(adapters, fusion, x, query, residual)
        assert not torch.allclose(stale, expected, atol=1e-3)
        fusion.clear_folded()
        fresh, _ = folding.fused_forward(fusion, adapters, x, query, residual)
    torch.testing.assert_close(fresh, expected, **TOL)


def test_folded_path_only_where_no_gradient_is_needed():
    adapters, fusion = _build(ADAPTER_SETS["same"], FUSION_CONFIGS["dynamic"])
    x, query, residual = _inputs()
    calls = []
    original = folding._run_folded
    folding._run_folded = _spy(original, calls)
    try:
        result = folding.fused_forward(fusion, adapters, x, query, residual)  # fusion weights need grads:
    finally:
        folding._run_folded = original
    assert result is not None and not calls  # library order, with live parameters
    expected, _ = _unfolded(adapters, fusion, x, query, residual)
    weights = torch.linspace(-1, 1, HIDDEN)
    grads = []
    for output in (result[0], expected):
        fusion.zero_grad(set_to_none=True)
        (output * weights).sum().backward()
        grads.append([p.grad.clone() for p in fusion.parameters()])
    for mine, reference in zip(*grads):
        torch.testing.assert_close(mine, reference, **TOL)
    fusion.train()
    with torch.no_grad():
        assert folding.fused_forward(fusion, adapters, x, query, residual) is None  # training mode
    fusion.eval()
    with torch.no_grad():
        assert folding.fused_forward(fusion, [], x, query, residual) is None
    gated, gated_fusion = _build(["seq_bn[use_gating=True]"] * 2, FUSION_CONFIGS["dynamic"])
    with torch.no_grad():
        assert folding.fused_forward(gated_fusion, gated, x, query, residual) is None

    # frozen weights, an input that needs a gradient: folded, and the input gradients agree
    for module in adapters + [fusion]:
        module.requires_grad_(False)
    grads = []
    for use_fold in (True, False):
        leaves = [t.clone().requires_grad_(True) for t in (x, query, residual)]
        if use_fold:
            result = folding.fused_forward(fusion, adapters, *leaves)
            assert result is not None
        else:
            result = _unfolded(adapters, fusion, *leaves)
        (result[0] * torch.linspace(-1, 1, HIDDEN)).sum().backward()
        grads.append([leaf.grad for leaf in leaves])
    for folded_grad, plain_grad in zip(*grads):
        assert folded_grad.abs().sum() > 0
        torch.testing.assert_close(folded_grad, plain_grad, **TOL)


def test_folded_path_inside_inference_mode_then_with_autograd():
    """Matrices folded under inference_mode are ordinary tensors: a later forward with autograd can use them."""
    adapters, fusion = _build(ADAPTER_SETS["same"], FUSION_CONFIGS["dynamic"])
    for module in adapters + [fusion]:
        module.requires_grad_(False)
    x, query, residual = _inputs()
    with torch.inference_mode():
        folding.fused_forward(fusion, adapters, x, query, residual)
    leaf = x.clone().requires_grad_(True)
    output, _ = folding.fused_forward(fusion, adapters, leaf, query, residual)
    output.sum().backward()
    assert leaf.grad is not None and leaf.grad.isfinite().all()


# --- through the engine ---------------------------------------------------------------------------

def _fused_model(arch="bert", config=None, specs=("seq_bn", "seq_bn[reduction_factor=8]", "seq_bn"),
                 mode="folded"):
    model = tiny_model(arch)
    names = ["a", "b", "c"][: len(specs)]
    for name, spec in zip(names, specs):
        model.add_adapter(name, config=spec)
    model.add_adapter_fusion(Fuse(*names), config=config, set_active=True)
    randomise([m for n in names for m in model.adapter_engine.modules_of(n)], seed=7, std=0.1)
    fusion_name = ",".join(names)
    randomise(model.adapter_engine.fusion_modules(fusion_name), seed=8, std=0.1)
    folding.set_fuse_mode(model, mode)
    model.eval()
    return model, fusion_name


def _unfolded_hidden(model, inputs, monkeypatch):
    with monkeypatch.context() as patch:
        patch.setattr(folding, "ENABLED", False)
        return hidden(model, inputs)


def _fold_used(model, fusion_name) -> bool:
    return all(module.__dict__.get("_fold_cache") for module in model.adapter_engine.fusion_modules(fusion_name))


@pytest.mark.parametrize("arch,config", [
    ("bert", None), ("bert", "static"), ("bert", {"query_before_ln": True}),
    ("bert", {"residual_before": True, "value_initialized": False}), ("gpt2", None), ("distilbert", "static"),
])
@pytest.mark.parametrize("mode", ["folded", "library_order"])
def test_engine_fuse_eval_paths_equal_unfolded(arch, config, mode, monkeypatch):
    if isinstance(config, dict):
        config = DynamicAdapterFusionConfig(**config)
    model, fusion_name = _fused_model(arch, config, mode=mode)
    inputs = tiny_inputs()
    expected = _unfolded_hidden(model, inputs, monkeypatch)
    assert not _fold_used(model, fusion_name)
    calls = []
    monkeypatch.setattr(BottleneckAdapter, "forward", _spy(BottleneckAdapter.forward, calls))
    result = hidden(model, inputs)
    assert not calls  # the fused adapters' own outputs are not computed
    assert _fold_used(model, fusion_name) == (mode == "folded")
    torch.testing.assert_close(result, expected, **TOL)


def test_engine_fusion_attentions_and_stack_child(monkeypatch):
    model, fusion_name = _fused_model()
    inputs = tiny_inputs()
    results = []
    for enabled in (False, True):
        with monkeypatch.context() as patch, torch.no_grad():
            patch.setattr(folding, "ENABLED", enabled)
            results.append(model(**inputs, output_adapter_fusion_attentions=True))
    plain, folded = (r["adapter_fusion_attentions"][fusion_name] for r in results)
    assert set(plain) == set(folded) == {0, 1}
    for layer in plain:
        for location in plain[layer]:
            torch.testing.assert_close(folded[layer][location], plain[layer][location], **TOL)
    torch.testing.assert_close(results[1].last_hidden_state, results[0].last_hidden_state, **TOL)

    # a Stack inside the Fuse: the unfolded path (the adapters' up-projections are not the stack's)
    model.add_adapter_fusion(Fuse("a", Stack("b", "c")))
    folding.set_fuse_mode(model, "folded")
    model.set_active_adapters(Fuse("a", Stack("b", "c")))
    assert hidden(model, inputs).isfinite().all()
    assert not _fold_used(model, "a,c")


def _grads_folded_and_not(model, inputs, monkeypatch) -> list:
    """The parameters' gradients of one backward pass with folding enabled, then of one with it disabled."""
    grads = []
    for enabled in (True, False):
        model.zero_grad(set_to_none=True)
        with monkeypatch.context() as patch:
            patch.setattr(folding, "ENABLED", enabled)
            model(**inputs).last_hidden_state.pow(2).mean().backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    return grads


def test_engine_training_and_gradients(monkeypatch):
    model, fusion_name = _fused_model()
    inputs = tiny_inputs()
    model.train_adapter_fusion(Fuse("a", "b", "c"))
    model.eval()  # dropout off, but the fusion weights need gradients: unfolded
    grads = _grads_folded_and_not(model, inputs, monkeypatch)
    assert not _fold_used(model, fusion_name)
    assert grads[0] and set(grads[0]) == set(grads[1])
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], **TOL)

    # adapters and fusion frozen, the backbone trainable: folded, same backbone gradients
    model.freeze_model(False)
    for name in "abc":
        for module in model.adapter_engine.modules_of(name):
            module.requires_grad_(False)
    for module in model.adapter_engine.fusion_modules(fusion_name):
        module.requires_grad_(False)
    grads = _grads_folded_and_not(model, inputs, monkeypatch)
    assert _fold_used(model, fusion_name)
    assert grads[0] and set(grads[0]) == set(grads[1])
    assert max(g.abs().max().item() for g in grads[1].values()) > 1e-2  # gradients well above the tolerance
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], **TOL)


def test_engine_reloaded_fusion_weights_are_used(tmp_path, monkeypatch):
    model, fusion_name = _fused_model()
    inputs = tiny_inputs()
    before = hidden(model, inputs)
    assert _fold_used(model, fusion_name)
    state = {k: v.clone() for k, v in model.state_dict().items() if "adapter_fusion_layer" in k}
    model.load_state_dict({k: v * 1.5 for k, v in state.items()}, strict=False)
    after = hidden(model, inputs)
    assert not torch.allclose(after, before, atol=1e-4)
    torch.testing.assert_close(after, _unfolded_hidden(model, inputs, monkeypatch), **TOL)
