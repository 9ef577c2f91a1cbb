"""AdapterPlus (bottleneck preset with channel scaling, Houlsby init, GELU, stochastic depth) and MTL-LoRA
(``mtl_lora``: config only, refused by the engine). Library parity: tests/parity/test_mtl_adapterplus_library.py;
golden cases ``methods/<arch>-adapter_plus``."""

from __future__ import annotations

import json

import pytest
import torch

from adapters_client.configs import (AdapterPlusConfig, BnConfig, LoRAConfig, MTLLoRAConfig, config_hash,
                                     load_config, method_name)
from adapters_client.configs.methods import method_for_config
from adapters_client.errors import InvalidAdapterConfig
from adapters_client.methods.bottleneck.modules import BottleneckAdapter, drop_path

from .engine_helpers import ARCHS, hidden, randomise, tiny_inputs, tiny_model

# the library's plugin interface (its only route to qwen2 / modernbert) refuses original_ln_after=False
INTERFACE = ("qwen2", "modernbert")
ADAPTER_PLUS_ARCHS = tuple(a for a in ARCHS if a not in INTERFACE)


# --- AdapterPlus: config -------------------------------------------------------------------------------
def test_adapter_plus_config_is_a_bottleneck_preset_with_its_own_defaults():
    plus, seq = AdapterPlusConfig(), load_config("seq_bn")
    assert isinstance(plus, BnConfig) and method_for_config(plus).name == "bottleneck"
    assert method_name(plus) == "seq_bn"  # the library has no name for it: a sequential bottleneck
    differs = {k for k, v in plus.to_dict().items() if seq.to_dict().get(k) != v}
    assert differs == {"reduction_factor", "non_linearity", "original_ln_after", "residual_before_ln",
                       "stochastic_depth", "init_weights", "scaling"}
    assert plus.stochastic_depth > 0 and plus.scaling == "channel" and plus.init_weights == "houlsby"


def test_adapter_plus_dict_round_trip_and_hash():
    plus = AdapterPlusConfig(reduction_factor=4)
    again = load_config(plus.to_dict())
    assert again.to_dict() == plus.to_dict()
    assert config_hash(again) == config_hash(plus)
    assert config_hash(plus) != config_hash(plus.replace(stochastic_depth=0.0))


@pytest.mark.parametrize("value", [-0.1, 1.5, "high"])
def test_adapter_plus_bad_stochastic_depth_is_refused(value):
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config({**AdapterPlusConfig().to_dict(), "stochastic_depth": value})
    assert info.value.field == "stochastic_depth"


# --- AdapterPlus: drop-path ------------------------------------------------------------------------------
def _module(p: float, parallel: bool = False) -> BottleneckAdapter:
    config = AdapterPlusConfig(reduction_factor=4, stochastic_depth=p)
    if parallel:
        config = config.replace(is_parallel=True)
    torch.manual_seed(0)
    module = BottleneckAdapter("x", 16, 4, config)
    randomise([module], seed=3, std=0.3)
    return module


def _rows(batch: int = 64):
    generator = torch.Generator().manual_seed(7)
    x = torch.randn(batch, 5, 16, generator=generator)
    return x, torch.randn(batch, 5, 16, generator=generator)


def test_stochastic_depth_is_the_identity_in_eval_mode():
    x, residual = _rows()
    with_sd, without = _module(0.9).eval(), _module(0.0).eval()
    out = with_sd(x, residual)[0]
    assert torch.equal(out, without(x, residual)[0])
    assert torch.equal(out, with_sd(x, residual)[0])  # deterministic
    assert (out - residual).abs().max() > 1e-2  # the adapter branch contributes


def test_stochastic_depth_p_one_drops_every_row_and_p_zero_none():
    x, residual = _rows()
    dropped = _module(1.0).train()(x, residual)
    assert torch.equal(dropped[0], residual) and torch.count_nonzero(dropped[2]) == 0
    module = _module(0.0)
    assert torch.equal(module.train()(x, residual)[0], module.eval()(x, residual)[0])


def test_stochastic_depth_drops_whole_rows_independently_and_rescales_kept_ones():
    p = 0.5
    x, residual = _rows(256)
    module = _module(p)
    branch = module.eval()(x, residual)[0] - residual
    torch.manual_seed(11)
    train_branch = module.train()(x, residual)[0] - residual
    kept = [bool(torch.count_nonzero(row)) for row in train_branch]
    for row, keep in zip(range(len(kept)), kept):  # a row is all dropped or all kept, kept rows scaled 1/(1-p)
        expected = branch[row] / (1 - p) if keep else torch.zeros_like(branch[row])
        torch.testing.assert_close(train_branch[row], expected, rtol=1e-5, atol=1e-6)
    share = sum(kept) / len(kept)
    assert 0.35 < share < 0.65, share  # 256 rows, p = 0.5: far outside this band has probability < 1e-5
    torch.manual_seed(11)
    assert torch.equal(module(x, residual)[0] - residual, train_branch)  # seeded: the same rows
    torch.manual_seed(12)
    assert not torch.equal(module(x, residual)[0] - residual, train_branch)


def test_drop_path_preserves_the_expectation():
    torch.manual_seed(5)
    values = torch.randn(4, 3, 8)
    for p in (0.1, 0.6):
        mean = torch.stack([drop_path(values, p) for _ in range(4000)]).mean(0)
        torch.testing.assert_close(mean, values, rtol=0.0, atol=0.15 * values.abs().max().item())


def test_parallel_adapters_never_drop_like_the_library():
    """adapters 1.3.0's ParallelAdapter builds the drop module but never applies it (tests/parity checks it)."""
    x, residual = _rows()
    module = _module(0.9, parallel=True)
    torch.manual_seed(0)
    assert torch.equal(module.train()(x, residual)[0], module.eval()(x, residual)[0])


# --- AdapterPlus: engine -----------------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ADAPTER_PLUS_ARCHS)
def test_adapter_plus_runs_trains_and_round_trips(arch, tmp_path):
    model = tiny_model(arch)
    model.add_adapter("x", config=AdapterPlusConfig(reduction_factor=4))
    model.set_active_adapters("x")
    modules = [m for m in model.modules() if isinstance(m, BottleneckAdapter)]
    assert modules and all(m.stochastic_depth == pytest.approx(0.1) for m in modules)
    assert all(m.scaling.shape == (m.adapter_up.out_features,) for m in modules)  # channel scaling
    randomise(modules)
    inputs = tiny_inputs()
    base = hidden(model, inputs)
    model.train_adapter("x")
    out = model(**inputs)
    (out[0] if not hasattr(out, "last_hidden_state") else out.last_hidden_state).sum().backward()
    assert all(m.scaling.grad is not None for m in modules)
    model.eval()
    assert torch.equal(hidden(model, inputs), base)
    model.save_adapter(str(tmp_path / "x"), "x")
    saved = json.loads((tmp_path / "x" / "adapter_config.json").read_text())["config"]
    assert saved["stochastic_depth"] == pytest.approx(0.1) and saved["scaling"] == "channel"
    fresh = tiny_model(arch)
    assert fresh.load_adapter(str(tmp_path / "x")) == "x"
    fresh.set_active_adapters("x")
    torch.testing.assert_close(hidden(fresh, inputs), base, rtol=0, atol=1e-6)


@pytest.mark.parametrize("arch", INTERFACE)
def test_adapter_plus_is_refused_on_the_interface_rows(arch):
    model = tiny_model(arch)
    with pytest.raises(InvalidAdapterConfig) as info:
        model.add_adapter("x", config=AdapterPlusConfig())
    assert info.value.field == "original_ln_after"
    assert "x" not in model.adapter_engine.configs


def test_adapter_plus_in_a_mixed_adapter_batch_equals_each_row_alone():
    model = tiny_model("bert")
    model.add_adapter("p", config=AdapterPlusConfig(reduction_factor=4))
    model.add_adapter("s", config="seq_bn")
    randomise([m for m in model.modules() if isinstance(m, BottleneckAdapter)])
    inputs = tiny_inputs(batch=3)
    names = ["p", None, "s"]
    with torch.no_grad():
        mixed = model(**inputs, adapter_names=names)[0]
    for row, name in enumerate(names):
        model.set_active_adapters(name)
        alone = hidden(model, {k: v[row:row + 1] for k, v in inputs.items()})
        torch.testing.assert_close(mixed[row:row + 1], alone, rtol=0, atol=1e-5)


# --- MTL-LoRA ----------------------------------------------------------------------------------------------
def test_mtl_lora_config_parses_with_lora_defaults_plus_its_own():
    config = load_config("mtl_lora")
    assert isinstance(config, MTLLoRAConfig) and isinstance(config, LoRAConfig)
    assert method_for_config(config).name == "lora" and method_name(config) == "mtl_lora"
    data = config.to_dict()
    assert data["architecture"] == "mtl_lora"
    lora = LoRAConfig().to_dict()
    assert {k: v for k, v in data.items() if k in lora and k != "architecture"} == \
        {k: v for k, v in lora.items() if k != "architecture"}
    assert set(data) - set(lora) == {"n_up_projection", "task_specific_matrix_type", "weights_sharpness"}
    again = load_config(data)
    assert isinstance(again, MTLLoRAConfig) and again.to_dict() == data
    assert config_hash(again) == config_hash(config) != config_hash(LoRAConfig())
    override = load_config("mtl_lora[n_up_projection=3,task_specific_matrix_type='linear',r=4]")
    assert (override.n_up_projection, override.task_specific_matrix_type, override.r) == (3, "linear", 4)


@pytest.mark.parametrize("config, field", [
    ("mtl_lora[n_up_projection=0]", "n_up_projection"),
    ("mtl_lora[n_up_projection=1.5]", "n_up_projection"),
    ("mtl_lora[task_specific_matrix_type='diag']", "task_specific_matrix_type"),
    ("mtl_lora[weights_sharpness=0]", "weights_sharpness"),
    ("mtl_lora[composition_mode='scale',r=1]", "composition_mode"),
    ({**LoRAConfig().to_dict(), "n_up_projection": 2}, "n_up_projection"),  # a plain LoRA dict has no such key
    ({**MTLLoRAConfig().to_dict(), "architecture": "lora"}, "n_up_projection"),
])
def test_mtl_lora_bad_configs_are_refused(config, field):
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config(config)
    assert info.value.field == field


@pytest.mark.parametrize("arch", ["bert", "gpt2", "llama", "bart"])
def test_mtl_lora_is_refused_by_the_engine_and_leaves_nothing(arch):
    model = tiny_model(arch)
    before = set(model.state_dict())
    with pytest.raises(InvalidAdapterConfig) as info:
        model.add_adapter("t", config="mtl_lora")
    assert info.value.field == "architecture" and "mtl_lora" in str(info.value)
    assert "t" not in model.adapter_engine.configs and set(model.state_dict()) == before
    model.add_adapter("t", config="lora")  # the name is free again and plain LoRA still works
