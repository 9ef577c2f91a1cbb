"""Invertible adapters (seq_bn_inv, double_seq_bn_inv) and Compacter (compacter, compacter++): modules, keys,
save/load, compositions, refusals, leave_out, training. Library parity: the golden cases
``methods/<arch>-{seq_bn_inv,double_seq_bn_inv,compacter,compacter++}``; the tests at the end compare option
variants with the ``adapters`` library directly and run where it is installed (.venv-ref)."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapters_client.composition import Fuse, Parallel, Stack
from adapters_client.configs import load_config, method_name
from adapters_client.configs.methods import ADAPTER_SEGMENTS, get_method
from adapters_client.errors import HookNotRun, HookTargetMissing, InvalidAdapterConfig, InvalidComposition
from adapters_client.methods.bottleneck.phm import PHMLayer, phm_weight
from adapters_client.methods.invertible import NICECouplingBlock

from .engine_helpers import hidden, randomise, tiny_inputs, tiny_model

ARCHS = ("bert", "roberta", "xlm-roberta", "distilbert", "gpt2")
GOLDEN = Path(__file__).resolve().parent / "golden" / "cases" / "backbones"
COMPACTER = "compacter[reduction_factor=4]"  # 32 / 4 = 8: divisible by phm_dim=4
COMPACTER_PP = "compacter++[reduction_factor=4]"


def _parts(model):
    return model.adapter_engine.extensions["bottleneck.model"]


def _randomised(model, name, seed=5, std=0.1):
    randomise(model.adapter_engine.modules_of(name), seed=seed, std=std)


# --- configs ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, inv, phm, mh", [
    ("seq_bn_inv", "nice", False, False), ("pfeiffer+inv", "nice", False, False),
    ("double_seq_bn_inv", "nice", False, True), ("houlsby+inv", "nice", False, True),
    ("compacter", None, True, True), ("compacter++", None, True, False),
])
def test_presets_and_aliases(name, inv, phm, mh):
    config = load_config(name)
    assert config.inv_adapter == inv and config.phm_layer is phm and config.mh_adapter is mh
    assert isinstance(config, get_method("bottleneck").config_class)
    if inv:
        assert config.inv_adapter_reduction_factor == 2
    if phm:
        assert (config.phm_dim, config.reduction_factor, config.non_linearity) == (4, 32, "gelu")
        assert config.shared_phm_rule is True and config.factorized_phm_W is True
    expected = ("compacter" if mh else "compacter++") if phm else ("double_seq_bn_inv" if mh else "seq_bn_inv")
    assert method_name(config) == expected  # the hub lists and resolves them by these names


def test_segments_hold_the_library_keys():
    assert "invertible_adapters" in ADAPTER_SEGMENTS
    assert "shared_parameters" in ADAPTER_SEGMENTS  # Compacter's shared PHM rule (segment shared with VeRA)
    method = get_method("bottleneck")
    module_name, _, attr = method.model_parts.partition(":")
    assert callable(getattr(__import__(module_name, fromlist=[attr]), attr))


# --- modules ---------------------------------------------------------------------------------------------------
def test_nice_block_inverts_exactly():
    torch.manual_seed(0)
    block = NICECouplingBlock(33, "relu", 2)  # odd width: halves of 16 and 17
    randomise([block], std=0.5)
    x = torch.randn(3, 5, 33)
    y = block(x)
    assert (y - x).abs().max() > 1e-2
    assert torch.allclose(block(y, rev=True), x, atol=1e-5)
    assert [k for k in block.state_dict()] == ["F.0.weight", "F.0.bias", "F.2.weight", "F.2.bias",
                                               "G.0.weight", "G.0.bias", "G.2.weight", "G.2.bias"]
    assert block.F[0].weight.shape == (8, 17) and block.G[0].weight.shape == (8, 16)


def test_phm_weight_is_a_sum_of_kronecker_products():
    generator = torch.Generator().manual_seed(3)
    rule, w = torch.randn(4, 4, 4, generator=generator), torch.randn(4, 3, 2, generator=generator)
    expected = sum(torch.kron(rule[k], w[k]) for k in range(4))
    assert torch.allclose(phm_weight(rule, w), expected, atol=1e-6)


@pytest.mark.parametrize("options, keys", [
    ({}, {"W_left", "W_right", "b"}),
    ({"shared_phm_rule": False}, {"W_left", "W_right", "b", "phm_rule"}),
    ({"shared_phm_rule": False, "factorized_phm_rule": True}, {"W_left", "W_right", "b", "phm_rule_left",
                                                               "phm_rule_right"}),
    ({"factorized_phm_W": False, "phm_bias": False}, {"W"}),
    ({"shared_W_phm": True}, {"b"}),
])
def test_phm_layer_parameters_follow_the_options(options, keys):
    config = load_config(COMPACTER).replace(**options)
    layer = PHMLayer("c", 32, 8, "down", config)
    assert set(dict(layer.named_parameters())) == keys


# --- engine: invertible adapters ---------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("preset", ["seq_bn_inv", "double_seq_bn_inv"])
def test_invertible_save_reload_same_outputs(arch, preset, tmp_path):
    model = tiny_model(arch)
    model.add_adapter("x", config=preset)
    model.add_causal_lm_head("x")
    _randomised(model, "x")
    model.set_active_adapters("x")
    inputs = tiny_inputs()
    with torch.no_grad():
        before = model(**inputs).logits
    model.save_adapter(str(tmp_path / "x"), "x")
    keys = set(load_file(str(tmp_path / "x" / "adapter.safetensors")))
    base = model.base_model_prefix
    assert f"{base}.invertible_adapters.x.F.0.weight" in keys and f"{base}.invertible_adapters.x.G.2.bias" in keys
    fresh = tiny_model(arch)
    assert fresh.load_adapter(str(tmp_path / "x"), set_active=True) == "x"
    fresh.active_head = "x"
    with torch.no_grad():
        assert torch.allclose(fresh(**inputs).logits, before, atol=1e-6)
    fresh.set_active_adapters(None)
    with torch.no_grad():
        assert (fresh(**inputs).logits - before).abs().max() > 1e-4


def test_lm_head_applies_the_inverse_before_the_projection():
    model = tiny_model("bert")
    model.add_adapter("x", config="seq_bn_inv")
    model.add_masked_lm_head("x")
    model.add_classification_head("cls", num_labels=3)
    _randomised(model, "x", std=0.3)
    model.set_active_adapters("x")
    inputs = tiny_inputs()
    with torch.no_grad():
        base = model.base_model(**inputs).last_hidden_state
        head = model.heads["x"]
        h = base
        for index in range(len(head) - 1):
            h = head[index](h)
        block = model.base_model.invertible_adapters["x"]
        expected = head[len(head) - 1](block(h, rev=True))
        without = head[len(head) - 1](h)
        got = model(**inputs, head="x").logits
    assert torch.allclose(got, expected, atol=1e-5)
    assert (got - without).abs().max() > 1e-3
    with torch.no_grad():  # a classification head ignores the block (it reads the hidden states only)
        cls = model(**inputs, head="cls").logits
        assert torch.allclose(cls, model.heads["cls"](model.base_model(**inputs)).logits, atol=1e-6)


def _embedding_effect(model, change: str, setup, inputs) -> float:
    """How much the output moves when adapter ``change``'s invertible block is perturbed."""
    model.set_active_adapters(setup)
    before = hidden(model, inputs)
    with torch.no_grad():
        model.base_model.invertible_adapters[change].F[2].bias.add_(1.0)
    after = hidden(model, inputs)
    with torch.no_grad():
        model.base_model.invertible_adapters[change].F[2].bias.sub_(1.0)
    return float((after - before).abs().max())


def test_compositions_run_the_first_adapters_block():
    model = tiny_model("bert")
    for name in ("a", "b"):
        model.add_adapter(name, config="seq_bn_inv")
        _randomised(model, name, seed=ord(name))
    model.add_adapter("plain", config="seq_bn")
    model.add_adapter_fusion(Fuse("a", "b"))
    inputs = tiny_inputs()
    for setup in (Stack("a", "b"), Fuse("a", "b"), Parallel("a", "b")):
        assert _embedding_effect(model, "a", setup, inputs) > 1e-3, setup
        assert _embedding_effect(model, "b", setup, inputs) == 0.0, setup
    # the first adapter has no invertible block: none runs (the library's rule)
    assert _embedding_effect(model, "a", Stack("plain", "a"), inputs) == 0.0


def test_adapter_setup_context_selects_the_block():
    from adapters_client import AdapterSetup

    model = tiny_model("gpt2")
    model.add_adapter("a", config="seq_bn_inv")
    _randomised(model, "a")
    inputs = tiny_inputs()
    plain = hidden(model, inputs)
    with AdapterSetup("a"):
        inside = hidden(model, inputs)
    model.set_active_adapters("a")
    assert torch.allclose(hidden(model, inputs), inside, atol=1e-6)
    assert (inside - plain).abs().max() > 1e-3


def test_delete_removes_the_model_level_parts():
    model = tiny_model("bert")
    model.add_adapter("x", config="seq_bn_inv")
    model.add_adapter("c", config=COMPACTER)
    assert "x" in model.base_model.invertible_adapters and "c" in model.base_model.shared_parameters
    model.delete_adapter("x")
    model.delete_adapter("c")
    assert "x" not in model.base_model.invertible_adapters and "c" not in model.base_model.shared_parameters
    assert not [k for k in model.state_dict() if ".x." in k or ".c." in k]


def test_embedding_hook_that_does_not_run_is_an_error():
    model = tiny_model("bert")
    model.add_adapter("x", config="seq_bn_inv")
    model.set_active_adapters("x")
    model.base_model.embeddings._forward_hooks.clear()  # as if transformers no longer called the hooked module
    with pytest.raises(HookNotRun) as info:
        hidden(model, tiny_inputs())
    assert "embeddings" in str(info.value)


def test_missing_embedding_module_is_an_error():
    model = tiny_model("bert")
    engine = model.adapter_engine
    engine.spec = dataclasses.replace(engine.spec, embedding_output="no_such_module")
    with pytest.raises(HookTargetMissing):
        model.add_adapter("x", config="seq_bn_inv")
    assert "x" not in engine.configs and "x" not in getattr(model.base_model, "invertible_adapters", {})


@pytest.mark.parametrize("config, field", [
    ({"architecture": "bottleneck", **load_config("seq_bn_inv").to_dict(), "inv_adapter": "glow"}, "inv_adapter"),
    ({**load_config("seq_bn").to_dict(), "inv_adapter": "nice"}, "inv_adapter_reduction_factor"),
    ("compacter", "phm_dim"),  # 32 // 32 = 1 is not divisible by phm_dim=4 (the library asserts)
    ("compacter[reduction_factor=4,phm_dim=3]", "phm_dim"),
    ({**load_config(COMPACTER).to_dict(), "hypercomplex_nonlinearity": "tanh"}, "hypercomplex_nonlinearity"),
    ({**load_config(COMPACTER).to_dict(), "shared_W_phm": True, "factorized_phm_W": False}, "shared_W_phm"),
    ({**load_config(COMPACTER).to_dict(), "shared_W_phm": True, "reduction_factor": {"default": 4}},
     "reduction_factor"),
    ({**load_config(COMPACTER).to_dict(), "init_weights": "mam_adapter"}, "init_weights"),
])
def test_unsupported_options_are_refused(config, field):
    model = tiny_model("bert")
    with pytest.raises(InvalidAdapterConfig) as info:
        model.add_adapter("x", config=config)
    assert info.value.field == field
    assert "x" not in model.adapter_engine.configs
    assert not [k for k in model.state_dict() if ".x." in k]


def test_mixed_batches_refuse_invertible_adapters():
    model = tiny_model("bert")
    model.add_adapter("x", config="seq_bn_inv")
    model.add_adapter("y", config="seq_bn")
    with pytest.raises(InvalidComposition):
        with torch.no_grad():
            model(**tiny_inputs(), adapter_names=["x", "y"])


# --- engine: Compacter -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("preset", [COMPACTER, COMPACTER_PP])
def test_compacter_save_reload_same_outputs(arch, preset, tmp_path):
    model = tiny_model(arch)
    model.add_adapter("c", config=preset)
    _randomised(model, "c")
    model.set_active_adapters("c")
    inputs = tiny_inputs()
    before = hidden(model, inputs)
    model.save_adapter(str(tmp_path / "c"), "c")
    keys = set(load_file(str(tmp_path / "c" / "adapter.safetensors")))
    base = model.base_model_prefix
    assert f"{base}.shared_parameters.c.phm_rule" in keys
    assert any(k.endswith("adapters.c.adapter_down.0.W_left") for k in keys)
    assert any(k.endswith("adapters.c.adapter_up.b") for k in keys)
    assert not any(k.endswith("phm_rule") and ".adapters.c." in k for k in keys)  # the rule is stored once
    fresh = tiny_model(arch)
    fresh.load_adapter(str(tmp_path / "c"), set_active=True)
    assert torch.allclose(hidden(fresh, inputs), before, atol=1e-6)
    fresh.set_active_adapters(None)
    assert (hidden(fresh, inputs) - before).abs().max() > 1e-4


@pytest.mark.parametrize("options", [
    {"shared_phm_rule": False}, {"factorized_phm_rule": True}, {"shared_W_phm": True},
    {"factorized_phm_W": False, "phm_bias": False}, {"phm_rank": 2, "phm_c_init": "uniform"}, {"phm_dim": 2},
])
def test_compacter_options_round_trip(options, tmp_path):
    config = load_config(COMPACTER).replace(**options)
    model = tiny_model("bert")
    model.add_adapter("c", config=config)
    _randomised(model, "c")
    model.set_active_adapters("c")
    inputs = tiny_inputs()
    before = hidden(model, inputs)
    model.save_adapter(str(tmp_path / "c"), "c")
    fresh = tiny_model("bert")
    fresh.load_adapter(str(tmp_path / "c"), set_active=True)
    assert fresh.adapter_engine.configs["c"] == config
    assert torch.allclose(hidden(fresh, inputs), before, atol=1e-6)


def test_shared_rule_is_one_tensor_for_every_layer():
    model = tiny_model("bert")
    model.add_adapter("c", config=COMPACTER)
    _randomised(model, "c")
    model.set_active_adapters("c")
    shared = model.base_model.shared_parameters["c"]
    layers = [m for m in model.modules() if isinstance(m, PHMLayer)]
    assert len(layers) == 2 * 2 * 2  # 2 layers x (mh, output) x (down, up)
    rule = shared["phm_rule"]
    expected = [phm_weight(rule, torch.bmm(m.W_left, m.W_right)) for m in layers]
    assert all(torch.equal(m.weight(), w) for m, w in zip(layers, expected))
    inputs = tiny_inputs()
    before = hidden(model, inputs)
    with torch.no_grad():
        rule.mul_(3.0)
    assert (hidden(model, inputs) - before).abs().max() > 1e-3


def test_leave_out_keeps_model_level_parts(tmp_path):
    model = tiny_model("bert")
    model.add_adapter("c", config=load_config(COMPACTER).replace(leave_out=[0], inv_adapter="nice",
                                                                  inv_adapter_reduction_factor=2))
    keys = [k for k in model.state_dict() if ".c." in k]
    assert not [k for k in keys if "layer.0." in k] and [k for k in keys if "layer.1." in k]
    assert [k for k in keys if "shared_parameters.c." in k] and [k for k in keys if "invertible_adapters.c." in k]
    model.save_adapter(str(tmp_path / "c"), "c")
    fresh = tiny_model("bert")
    fresh.load_adapter(str(tmp_path / "c"), leave_out=[1])
    loaded = [k for k in fresh.state_dict() if ".c." in k]
    assert not [k for k in loaded if "layer." in k]
    assert [k for k in loaded if "shared_parameters.c." in k] and [k for k in loaded if "invertible_adapters.c." in k]
    assert fresh.adapter_engine.configs["c"].leave_out == [0, 1]


def test_average_adapter_averages_the_model_level_parts():
    model = tiny_model("bert")
    config = load_config(COMPACTER).replace(inv_adapter="nice", inv_adapter_reduction_factor=2)
    for index, name in enumerate(("a", "b")):
        model.add_adapter(name, config=config)
        _randomised(model, name, seed=10 + index)
    model.average_adapter("avg", ["a", "b"], weights=[0.25, 0.75])
    shared = model.base_model.shared_parameters
    expected = 0.25 * shared["a"]["phm_rule"] + 0.75 * shared["b"]["phm_rule"]
    assert torch.allclose(shared["avg"]["phm_rule"], expected, atol=1e-6)
    blocks = model.base_model.invertible_adapters
    assert torch.allclose(blocks["avg"].G[0].weight, 0.25 * blocks["a"].G[0].weight + 0.75 * blocks["b"].G[0].weight,
                          atol=1e-6)


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_training_reaches_every_part(arch):
    model = tiny_model(arch)
    config = load_config(COMPACTER).replace(inv_adapter="nice", inv_adapter_reduction_factor=2)
    model.add_adapter("c", config=config)
    model.add_causal_lm_head("c")
    _randomised(model, "c")
    model.train_adapter("c")
    inputs = tiny_inputs()
    out = model(**inputs, labels=inputs["input_ids"])
    out.loss.backward()
    named = dict(model.named_parameters())
    base = model.base_model_prefix
    for key in (f"{base}.shared_parameters.c.phm_rule", f"{base}.invertible_adapters.c.F.0.weight"):
        assert named[key].requires_grad and named[key].grad is not None and named[key].grad.abs().sum() > 0, key
    phm = [n for n in named if ".adapters.c." in n and n.endswith(("W_left", "W_right"))]
    assert phm and all(named[n].grad is not None and named[n].grad.abs().sum() > 0 for n in phm)
    frozen = [p for n, p in named.items() if ("attention" in n or "attn" in n) and ".c." not in n]
    assert frozen and all(p.grad is None and not p.requires_grad for p in frozen)


def test_compacter_and_vera_share_the_segment_without_mixing(tmp_path):
    model = tiny_model("bert")
    model.add_adapter("c", config=COMPACTER)
    model.add_adapter("v", config="vera")
    engine = model.adapter_engine
    shared = model.base_model.shared_parameters
    assert {"c", "v"} <= set(shared)
    counted = {m for m in engine.modules_of("c") if m is shared["c"] or m is shared["v"]}
    assert counted == {shared["c"]}  # the compacter adapter's modules hold its own entry, once
    model.save_adapter(str(tmp_path / "c"), "c")
    assert not [k for k in load_file(str(tmp_path / "c" / "adapter.safetensors")) if ".v." in k]
    model.delete_adapter("c")
    assert "v" in shared and "c" not in shared
