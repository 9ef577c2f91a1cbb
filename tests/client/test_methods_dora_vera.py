"""DoRA, VeRA and DVoRA: configs (names, dicts, hashes, refusals) and the engine (forward, save/load, merge,
gradients, GPT-2 refusals). Library parity: the golden cases ``methods/<arch>-{dora,vera,dvora}``; the tests at
the end compare with the ``adapters`` library directly and run where it is installed (.venv-ref)."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from adapters_client.configs import config_hash, load_config, method_name
from adapters_client.configs.lora import DoRAConfig, DvoRAConfig, LoRAConfig, VeraConfig
from adapters_client.errors import IncompatibleAdapter, InvalidAdapterConfig

from .engine_helpers import hidden, randomise, tiny_inputs, tiny_model

ENCODERS = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
VARIANTS = ("dora", "vera", "dvora")
GOLDEN_BERT = Path(__file__).resolve().parent / "golden" / "cases" / "backbones" / "bert"


# --- configs -------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, cls, fields", [
    ("dora", DoRAConfig, {"use_dora": True, "vera_d": None, "vera_b": None, "init_weights": "lora", "r": 8,
                          "alpha": 8, "attn_matrices": ["q", "v"]}),
    ("vera", VeraConfig, {"use_dora": False, "vera_d": 0.1, "vera_b": 0.0, "init_weights": "vera", "r": 8,
                          "alpha": 8, "attn_matrices": ["q", "v"]}),
    ("dvora", DvoRAConfig, {"use_dora": True, "vera_d": 0.1, "vera_b": 0.0, "init_weights": "vera", "r": 8,
                            "alpha": 8, "attn_matrices": ["q", "v"]}),
])
def test_presets_have_the_library_defaults(name, cls, fields):
    config = load_config(name)
    assert type(config) is cls and isinstance(config, LoRAConfig)
    assert config.to_dict()["architecture"] == "lora"
    for key, value in fields.items():
        assert config[key] == value, key
    assert method_name(config) == name


@pytest.mark.parametrize("name", VARIANTS)
def test_names_and_dicts_are_one_config(name):
    config = load_config(name)
    from_dict = load_config(config.to_dict())
    assert from_dict == config
    assert method_name(from_dict) == name
    assert config_hash(name) == config_hash(config.to_dict()) == config_hash(config)
    assert config_hash(name) != config_hash("lora")


def test_minimal_dicts_hash_like_the_presets():
    assert config_hash({"architecture": "lora", "use_dora": True}) == config_hash("dora")
    assert config_hash({"architecture": "lora", "vera_d": 0.1, "vera_b": 0.0, "init_weights": "vera"}) == \
        config_hash("vera")
    assert method_name(load_config({"architecture": "lora", "vera_d": 0.1, "vera_b": 0.0, "use_dora": True})) == \
        "dvora"


def test_integer_vera_values_are_written_as_floats():
    # the library recognises VeRA by float values only; 1 and 1.0 are one setting here and are written as 1.0
    config = load_config({"architecture": "lora", "vera_d": 1, "vera_b": 0})
    assert isinstance(config.to_dict()["vera_d"], float) and isinstance(config.to_dict()["vera_b"], float)
    assert config_hash(config) == config_hash("vera[vera_d=1.0,vera_b=0.0,init_weights='lora']")
    assert method_name(config) == "vera"


@pytest.mark.parametrize("spec, field", [
    ({"architecture": "lora", "vera_d": 0.1}, "vera_b"),
    ({"architecture": "lora", "vera_b": 0.1}, "vera_d"),
    ({"architecture": "lora", "vera_d": True, "vera_b": 0.0}, "vera_d"),
    ("vera[composition_mode='scale',r=1]", "composition_mode"),
    ("ia3[use_dora=True]", "use_dora"),
    ("dora[use_dora='yes']", "use_dora"),
])
def test_invalid_configs_are_refused(spec, field):
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config(spec)
    assert info.value.field == field


# --- engine ----------------------------------------------------------------------------------------------------
def _model_with(arch: str, config, name: str = "x", seed: int = 5):
    model = tiny_model(arch)
    model.add_adapter(name, config=config)
    randomise(model.adapter_engine.modules_of(name), seed=seed)
    model.set_active_adapters(name)
    return model


def _random_biases(model, seed: int = 3) -> None:
    """Non-zero biases in every projection (HF initialises them to zero), so bias handling is exercised."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in model.base_model.modules():
            if isinstance(module, torch.nn.Linear) and module.bias is not None:
                module.bias.copy_(torch.randn(module.bias.shape, generator=generator) * 0.1)


@pytest.mark.parametrize("arch", ENCODERS)
@pytest.mark.parametrize("variant", VARIANTS)
def test_forward_save_load_round_trip(arch, variant, tmp_path):
    model = _model_with(arch, variant)
    inputs = tiny_inputs()
    out = hidden(model, inputs)
    model.set_active_adapters(None)
    assert (hidden(model, inputs) - out).abs().max() > 1e-3  # the adapter changes the output
    model.save_adapter(str(tmp_path / "x"), "x")
    other = tiny_model(arch)
    assert other.load_adapter(str(tmp_path / "x"), set_active=True) == "x"
    assert torch.allclose(hidden(other, inputs), out, atol=1e-6)


def test_checkpoint_keys_follow_the_library(tmp_path):
    for variant in VARIANTS:
        model = _model_with("bert", variant)
        model.save_adapter(str(tmp_path / variant), "x")
        state = load_file(str(tmp_path / variant / "adapter.safetensors"))
        query = "bert.encoder.layer.0.attention.self.query.loras.x."
        if variant in ("dora", "dvora"):
            assert state[query + "m.weight"].shape == (32, 1)
        else:
            assert not any(k.endswith(".m.weight") for k in state)
        if variant == "dora":
            assert state[query + "lora_A"].shape == (8, 32) and state[query + "lora_B"].shape == (32, 8)
            assert not any("shared_parameters" in k for k in state)
            continue
        # VeRA: per layer only its trainable matrices; the shared frozen A/B once, under the base model
        assert state[query + "vera_D"].shape == (8, 8) and state[query + "vera_B"].shape == (32, 32)
        assert not any(k.startswith(query + "lora_") or ".shared." in k for k in state)
        assert state["bert.shared_parameters.x.lora_A"].shape == (8, 32)
        assert state["bert.shared_parameters.x.lora_B"].shape == (32, 8)
        assert sum("shared_parameters" in k for k in state) == 2


def test_vera_shared_matrices_are_loaded_not_regenerated(tmp_path):
    model = _model_with("bert", "vera")
    shared = model.base_model.shared_parameters["x"]
    with torch.no_grad():
        shared.lora_A.mul_(3.0)  # no initialisation can give these values back
    model.save_adapter(str(tmp_path / "x"), "x")
    other = tiny_model("bert")
    other.load_adapter(str(tmp_path / "x"), load_as="y", set_active=True)
    assert torch.equal(other.base_model.shared_parameters["y"].lora_A, shared.lora_A)
    assert "x" not in other.base_model.shared_parameters
    assert torch.allclose(hidden(other, tiny_inputs()), hidden(model, tiny_inputs()), atol=1e-6)


def test_vera_file_without_shared_matrices_is_refused(tmp_path):
    from safetensors.torch import save_file

    model = _model_with("bert", "vera")
    model.save_adapter(str(tmp_path / "x"), "x")
    path = tmp_path / "x" / "adapter.safetensors"
    state = {k: v for k, v in load_file(str(path)).items() if "shared_parameters" not in k}
    save_file(state, str(path))
    with pytest.raises(IncompatibleAdapter) as info:
        tiny_model("bert").load_adapter(str(tmp_path / "x"))
    assert info.value.details["key"] == "bert.shared_parameters.x.lora_A"


def test_vera_shared_matrices_per_adapter_and_removed_with_it():
    model = tiny_model("bert")
    model.add_adapter("a", config="vera")
    model.add_adapter("b", config="vera[r=4]")
    store = model.base_model.shared_parameters
    assert store["a"].lora_A.shape == (8, 32) and store["b"].lora_A.shape == (4, 32)
    assert store["a"] is not store["b"]
    assert model.base_model.encoder.layer[1].attention.self.query.loras["b"].shared is store["b"]
    model.delete_adapter("a")
    assert list(store.keys()) == ["b"]
    model.add_adapter("b", config="vera", overwrite_ok=True)  # replaced: a new r=8 pair
    assert store["b"].lora_A.shape == (8, 32)


def test_vera_seeded_shared_matrices_are_reproducible():
    def shared(seed):
        model = tiny_model("bert")
        model.add_adapter("x", config=f"vera[init_weights_seed={seed}]")
        entry = model.base_model.shared_parameters["x"]
        return entry.lora_A.clone(), entry.lora_B.clone()

    first, again, other = shared(7), shared(7), shared(8)
    assert torch.equal(first[0], again[0]) and torch.equal(first[1], again[1])
    assert not torch.equal(first[0], other[0])
    assert first[1].abs().sum() > 0  # init_weights "vera": B is random too (not LoRA's zeros)


@pytest.mark.parametrize("spec", ["vera[intermediate_lora=True]", "vera[output_lora=True]"])
def test_vera_projections_of_different_shapes_are_refused(spec):
    model = tiny_model("bert")
    with pytest.raises(InvalidAdapterConfig):
        model.add_adapter("x", config=spec)
    assert "x" not in model.adapter_engine.configs
    assert "x" not in getattr(model.base_model, "shared_parameters", {})
    assert not any(k for k in model.base_model.state_dict() if ".loras.x." in k)


@pytest.mark.parametrize("variant", VARIANTS)
def test_merge_and_reset(variant):
    model = _model_with("bert", f"{variant}[alpha=16,intermediate_lora={variant == 'dora'}]")
    _random_biases(model)
    inputs = tiny_inputs()
    before = {k: v.clone() for k, v in model.base_model.state_dict().items() if not k.startswith("shared")}
    out = hidden(model, inputs)
    model.merge_adapter("x")
    query = model.base_model.encoder.layer[0].attention.self.query
    assert not torch.allclose(query.weight, before["encoder.layer.0.attention.self.query.weight"])
    if variant != "vera":  # DoRA rescales the bias too
        assert not torch.allclose(query.bias, before["encoder.layer.0.attention.self.query.bias"])
    assert torch.allclose(hidden(model, inputs), out, atol=1e-5)  # merged: same output, adapter not applied again
    model.reset_adapter()
    after = model.base_model.state_dict()
    for key, value in before.items():
        assert torch.allclose(after[key], value, atol=1e-6), key
    assert torch.allclose(hidden(model, inputs), out, atol=1e-5)


def test_vera_merge_on_gpt2_conv1d():
    model = _model_with("gpt2", "vera[selfattn_lora=False,intermediate_lora=True]")
    inputs = tiny_inputs()
    out = hidden(model, inputs)
    model.set_active_adapters(None)
    assert (hidden(model, inputs) - out).abs().max() > 1e-3
    model.set_active_adapters("x")
    model.merge_adapter("x")
    assert torch.allclose(hidden(model, inputs), out, atol=1e-5)
    model.reset_adapter()
    assert torch.allclose(hidden(model, inputs), out, atol=1e-5)


@pytest.mark.parametrize("spec, field", [
    ("dora", "use_dora"), ("vera", "vera_d"), ("dvora", "use_dora"),
    ("dora[selfattn_lora=False,intermediate_lora=True]", "use_dora"),
    ("dvora[selfattn_lora=False,output_lora=True]", "use_dora"),
])
def test_gpt2_refusals_leave_nothing_behind(spec, field):
    model = tiny_model("gpt2")
    with pytest.raises(InvalidAdapterConfig) as info:
        model.add_adapter("x", config=spec)
    assert info.value.field == field
    assert "x" not in model.adapter_engine.configs
    assert not any(".x." in k for k in model.base_model.state_dict())


@pytest.mark.parametrize("variant", ["dora", "vera", "dvora"])
def test_gated_variants_have_gates(variant):
    """Gating is supported (the gate replaces alpha / r; library parity: tests/parity/test_unions_library.py)."""
    model = tiny_model("bert")
    model.add_adapter("x", config=f"{variant}[use_gating=True]", set_active=True)
    gates = [k for k in model.base_model.state_dict() if ".loras.x.gate." in k]
    assert gates and all(k.endswith((".weight", ".bias")) for k in gates)
    with pytest.raises(InvalidAdapterConfig) as info:
        model.merge_adapter("x")
    assert info.value.field == "use_gating"


@pytest.mark.parametrize("variant, trained, zero_at_start", [
    ("dora", ("lora_A", "lora_B", "m.weight"), ("lora_A",)),
    ("vera", ("vera_D", "vera_B"), ("vera_D",)),
    ("dvora", ("vera_D", "vera_B", "m.weight"), ("vera_D",)),
])
def test_gradients_reach_the_trainable_weights_only(variant, trained, zero_at_start):
    model = tiny_model("bert")
    model.add_adapter("x", config=variant)
    model.train_adapter("x")
    names = {n for n, p in model.base_model.named_parameters() if p.requires_grad}
    assert names and all(".loras.x." in n for n in names)
    assert {n.split(".loras.x.")[1] for n in names} == set(trained)  # VeRA's shared A/B are frozen buffers
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.5)
    for step in range(2):  # B (VeRA: vera_B) starts at zero: A's gradient appears after the first step
        optimizer.zero_grad()
        out = model(**tiny_inputs())
        (out[0] if not hasattr(out, "last_hidden_state") else out.last_hidden_state).pow(2).mean().backward()
        grads = {n.split(".loras.x.")[1]: p.grad for n, p in model.base_model.named_parameters()
                 if p.requires_grad and ".layer.0.attention.self.query." in n}
        for key in trained:
            nonzero = grads[key] is not None and grads[key].abs().sum() > 0
            assert nonzero == (step > 0 or key not in zero_at_start), (step, key)
        optimizer.step()
    if variant != "dora":  # VeRA's shared A/B are buffers: no optimiser can move them
        assert not any(".shared" in n for n, _ in model.named_parameters())
        assert "lora_A" in dict(model.base_model.shared_parameters["x"].named_buffers())


def test_average_adapter_averages_the_shared_matrices():
    model = tiny_model("bert")
    for name, seed in (("a", 1), ("b", 2)):
        model.add_adapter(name, config="vera")
        randomise(model.adapter_engine.modules_of(name), seed=seed)
    store = model.base_model.shared_parameters
    model.average_adapter("avg", ["a", "b"], weights=[0.25, 0.75])
    expected = 0.25 * store["a"].lora_A + 0.75 * store["b"].lora_A
    assert torch.allclose(store["avg"].lora_A, expected, atol=1e-6)
    layer = model.base_model.encoder.layer[1].attention.self.value.loras
    assert torch.allclose(layer["avg"].vera_B, 0.25 * layer["a"].vera_B + 0.75 * layer["b"].vera_B, atol=1e-6)


def test_whole_model_save_keeps_vera_out_of_the_backbone(tmp_path):
    from adapters_client import AutoAdapterModel

    model = _model_with("bert", "vera")
    model.save_pretrained(str(tmp_path / "m"))
    backbone = load_file(str(tmp_path / "m" / "model.safetensors"))
    assert not any("shared_parameters" in k or ".loras." in k for k in backbone)
    again = AutoAdapterModel.from_pretrained(str(tmp_path / "m"))
    again.set_active_adapters("x")
    assert torch.allclose(hidden(again.eval(), tiny_inputs()), hidden(model, tiny_inputs()), atol=1e-6)
