"""AdapterPlus (bottleneck preset with channel scaling, Houlsby init, GELU, stochastic depth) and MTL-LoRA
(``mtl_lora``: task-specific transform, mixed up-projections, ``share_parameters``, ``MultiTask`` routed by
``task_ids``). Library parity: tests/parity/test_mtl_adapterplus_library.py; golden cases
``methods/<arch>-adapter_plus`` and ``methods/<arch>-mtl_lora``."""

from __future__ import annotations

import json

import pytest
import torch

from adapters_client.configs import (AdapterPlusConfig, BnConfig, LoRAConfig, MTLLoRAConfig, config_hash,
                                     load_config, method_name)
from adapters_client.configs.methods import method_for_config
from adapters_client.composition import MultiTask, Stack
from adapters_client.errors import AdapterNameNotFound, InvalidAdapterConfig, InvalidComposition
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



# --- MTL-LoRA: engine --------------------------------------------------------------------------------------
# not on GPT-2 (fused c_attn; the library fails in the forward pass) nor on the plugin-interface rows (the library
# refuses the config); DeBERTa-v2 runs MTL-LoRA but not MultiTask (its projections also see the relative positions)
MTL_ARCHS = tuple(a for a in ARCHS if a not in ("gpt2",) + INTERFACE)
MULTITASK_ARCHS = tuple(a for a in MTL_ARCHS if a != "deberta-v2")


def _mtl_modules(model, name: str) -> list:
    from adapters_client.methods.lora.mtl import MTLLoRA

    modules = model.adapter_engine.modules_of(name)
    assert modules and all(isinstance(m, MTLLoRA) for m in modules)
    return modules


def _two_tasks(arch: str, config: str = "mtl_lora[n_up_projection=3]", share: bool = False):
    model = tiny_model(arch)
    model.add_adapter("a", config=config)
    model.add_adapter("b", config=config)
    randomise(_mtl_modules(model, "a") + _mtl_modules(model, "b"), std=0.3)
    if share:
        model.share_parameters(MultiTask("a", "b"))
    return model


def _alone(model, inputs, rows, name) -> torch.Tensor:
    model.set_active_adapters(name)
    return hidden(model, {k: v[rows] for k, v in inputs.items()})


def test_mtl_lora_module_has_the_library_shapes_and_starts_as_the_identity():
    model = tiny_model("bert")
    inputs = tiny_inputs()
    base = hidden(model, inputs)
    model.add_adapter("t", config="mtl_lora[n_up_projection=3,r=4]", set_active=True)
    modules = _mtl_modules(model, "t")
    assert len(modules) == 4  # q and v of two layers
    for module in modules:
        assert module.lora_A.shape == (4, 32) and module.lora_B.shape == (3, 32, 4)
        assert torch.equal(module.task_specific.values, torch.ones(4)) and torch.equal(module.weights, torch.ones(3))
        assert not module.lora_B.any() and module.lora_A.abs().sum() > 0 and module.weights_sharpness == 0.05
    keys = {k.split(".loras.t.")[1] for k in model.state_dict() if ".loras.t." in k}
    assert keys == {"lora_A", "lora_B", "task_specific.values", "weights"}
    torch.testing.assert_close(hidden(model, inputs), base, rtol=0, atol=0)


def test_mtl_lora_forward_mixes_the_up_projections_by_the_sharpened_softmax():
    from adapters_client.methods.lora.mtl import MTLLoRA

    config = load_config("mtl_lora[n_up_projection=3,r=4,alpha=6,weights_sharpness=0.5]")
    module = MTLLoRA(10, 7, config)
    randomise([module], std=0.5)
    x = torch.randn(2, 5, 10, generator=torch.Generator().manual_seed(4))
    with torch.no_grad():
        got = module(None, x)
        weights = [float(w) for w in module.weights]
        exps = [2.718281828459045 ** (w / 0.5) for w in weights]
        expected = torch.zeros(2, 5, 7)
        for k in range(3):
            transform = x @ module.lora_A.t() @ torch.diag(module.task_specific.values) @ module.lora_B[k].t()
            expected += exps[k] / sum(exps) * transform
    torch.testing.assert_close(got, expected * 6 / 4, rtol=1e-5, atol=1e-6)


def test_mtl_lora_seeded_initialisation_is_reproducible_and_bert_init_draws_b():
    first, second = tiny_model("bert"), tiny_model("bert")
    for model in (first, second):
        torch.manual_seed(len(model.adapter_engine.configs))  # a different global state: the seed decides
        model.add_adapter("t", config="mtl_lora[init_weights='bert',init_weights_seed=11,n_up_projection=2]")
    for ours, theirs in zip(_mtl_modules(first, "t"), _mtl_modules(second, "t")):
        for (key, value), other in zip(ours.state_dict().items(), theirs.state_dict().values()):
            assert torch.equal(value, other), key
        assert 0.005 < float(ours.lora_B.detach().std()) < 0.05  # bert: N(0, 0.02)


@pytest.mark.parametrize("arch", MULTITASK_ARCHS)
def test_multi_task_routes_each_row_to_its_task_adapter(arch):
    model = _two_tasks(arch)
    inputs = tiny_inputs(batch=4)  # row 0 padded: mixed lengths
    model.set_active_adapters(MultiTask("a", "b"))
    task_ids = torch.tensor([1, 0, 1, 0])
    routed = hidden_with(model, inputs, task_ids=task_ids)
    by_name = hidden_with(model, inputs, task_ids=["b", "a", "b", "a"])
    torch.testing.assert_close(by_name, routed, rtol=0, atol=0)
    torch.testing.assert_close(routed[[1, 3]], _alone(model, inputs, [1, 3], "a"), rtol=0, atol=2e-5)
    torch.testing.assert_close(routed[[0, 2]], _alone(model, inputs, [0, 2], "b"), rtol=0, atol=2e-5)
    assert (routed[[0, 2]] - _alone(model, inputs, [0, 2], "a")).abs().max() > 1e-3  # the tasks differ


def hidden_with(model, inputs, **kwargs) -> torch.Tensor:
    with torch.no_grad():
        out = model(**inputs, **kwargs)
    return out[0] if not hasattr(out, "last_hidden_state") else out.last_hidden_state


def test_multi_task_one_task_for_every_row_and_a_stack_child():
    model = _two_tasks("bert")
    model.add_adapter("c", config="lora")
    randomise(model.adapter_engine.modules_of("c"), std=0.3)
    inputs = tiny_inputs(batch=3)
    model.set_active_adapters(MultiTask("a", Stack("c", "b")))
    every_a = hidden_with(model, inputs, task_ids=torch.zeros(3, dtype=torch.long))
    torch.testing.assert_close(every_a, _alone(model, inputs, slice(None), "a"), rtol=0, atol=2e-5)
    model.set_active_adapters(MultiTask("a", Stack("c", "b")))
    mixed = hidden_with(model, inputs, task_ids=[1, 0, 1])
    torch.testing.assert_close(mixed[[0, 2]], _alone(model, inputs, [0, 2], Stack("c", "b")), rtol=0, atol=2e-5)


@pytest.mark.parametrize("task_ids, message", [
    (None, "pass task_ids"), (torch.tensor([0, 1]), "batch has 3 rows"), (torch.tensor([0, 1, 2]), r"\[0, 2\)"),
    (torch.tensor([0, -1, 1]), r"\[0, 2\)"), (["a", "b", "z"], "'z'"), (torch.tensor([0.0, 1.0, 1.0]), "integers"),
    ([0, "a", 1], "task_ids must be"),
])
def test_multi_task_refuses_missing_or_bad_task_ids(task_ids, message):
    model = _two_tasks("bert")
    model.set_active_adapters(MultiTask("a", "b"))
    with pytest.raises(InvalidComposition, match=message) as info:
        hidden_with(model, tiny_inputs(batch=3), **({} if task_ids is None else {"task_ids": task_ids}))
    assert info.value.details["field"] == "task_ids"
    model.set_active_adapters("a")  # the model still works afterwards
    hidden(model, tiny_inputs(batch=3))


def test_task_ids_with_adapter_names_is_refused_and_deberta_multitask_too():
    model = _two_tasks("bert")
    with pytest.raises(InvalidComposition, match="not both"):
        hidden_with(model, tiny_inputs(batch=2), adapter_names=["a", "b"], task_ids=[0, 1])
    deberta = _two_tasks("deberta-v2")
    deberta.set_active_adapters(MultiTask("a", "b"))
    with pytest.raises(InvalidComposition, match="task_ids"):
        hidden_with(deberta, tiny_inputs(batch=2), task_ids=[0, 1])
    deberta.set_active_adapters("a")
    assert torch.isfinite(hidden(deberta, tiny_inputs(batch=2))).all()


def test_init_wrapped_model_takes_task_ids():
    import inspect

    from transformers import AutoModel

    from adapters_client import init

    from .engine_helpers import tiny_config

    torch.manual_seed(0)
    model = init(AutoModel.from_config(tiny_config("bert")).eval())
    assert "task_ids" in inspect.signature(model.forward).parameters
    model.add_adapter("a", config="mtl_lora")
    model.add_adapter("b", config="mtl_lora")
    randomise(_mtl_modules(model, "a") + _mtl_modules(model, "b"), std=0.3)
    inputs = tiny_inputs(batch=2)
    model.set_active_adapters(MultiTask("a", "b"))
    routed = hidden_with(model, inputs, task_ids=["b", "a"])
    torch.testing.assert_close(routed[1:], _alone(model, inputs, [1], "a"), rtol=0, atol=2e-5)
    torch.testing.assert_close(routed[:1], _alone(model, inputs, [0], "b"), rtol=0, atol=2e-5)


def test_mtl_lora_in_a_mixed_adapter_batch_equals_each_row_alone():
    model = _two_tasks("llama")
    inputs = tiny_inputs(batch=3)
    names = ["b", None, "a"]
    mixed = hidden_with(model, inputs, adapter_names=names)
    for row, name in enumerate(names):
        torch.testing.assert_close(mixed[row:row + 1], _alone(model, inputs, [row], name), rtol=0, atol=2e-5)


# --- MTL-LoRA: share_parameters ----------------------------------------------------------------------------
def test_share_parameters_ties_a_and_b_under_the_library_keys():
    from adapters_client.fingerprint import weights_digest

    model = _two_tasks("bert")
    digest = weights_digest(model)
    reference = [(m.lora_A.detach().clone(), m.lora_B.detach().clone()) for m in _mtl_modules(model, "b")]
    model.share_parameters(["a", "b"], reference_adapter_name="b")
    for (ref_a, ref_b), a, b in zip(reference, _mtl_modules(model, "a"), _mtl_modules(model, "b")):
        assert a.lora_A is b.lora_A and a.lora_B is b.lora_B
        assert torch.equal(a.lora_A, ref_a) and torch.equal(a.lora_B, ref_b)
        assert a.task_specific.values is not b.task_specific.values and a.weights is not b.weights
    keys = [k for k in model.state_dict() if ".shared_parameters." in k]
    assert len(keys) == 8 and all(".shared_parameters.a,b.lora_" in k for k in keys)
    assert "bert.encoder.layer.0.attention.self.query.shared_parameters.a,b.lora_A" in keys
    assert weights_digest(model) == digest  # shared adapter tensors are not backbone weights


def test_shared_parameters_train_together_and_train_adapter_freezes_the_rest():
    model = _two_tasks("bert", share=True)
    model.train_adapter(MultiTask("a", "b"))
    trainable = {n for n, p in model.named_parameters(remove_duplicate=False) if p.requires_grad}
    assert trainable and all(".loras.a." in n or ".loras.b." in n or ".shared_parameters.a,b." in n
                             for n in trainable)
    assert any("task_specific.values" in n for n in trainable) and any(n.endswith(".weights") for n in trainable)
    inputs = tiny_inputs(batch=4)
    model(**inputs, task_ids=[0, 1, 1, 0]).last_hidden_state.sum().backward()
    for a, b in zip(_mtl_modules(model, "a"), _mtl_modules(model, "b")):
        assert a.lora_A.grad is not None and a.lora_A.grad is b.lora_A.grad
        assert a.weights.grad is not None and b.task_specific.values.grad is not None
    assert all(p.grad is None for n, p in model.named_parameters() if ".loras." not in n and "shared" not in n)


@pytest.mark.parametrize("share_name", [None, "a"])
def test_shared_adapters_save_and_load_on_their_own(share_name, tmp_path):
    from safetensors.torch import load_file

    model = _two_tasks("roberta")
    model.share_parameters(MultiTask("a", "b"), name=share_name)
    inputs = tiny_inputs(batch=4)
    model.set_active_adapters(MultiTask("a", "b"))
    expected = hidden_with(model, inputs, task_ids=[1, 1, 0, 0])
    for name in "ab":
        model.save_adapter(str(tmp_path / name), name)
    keys = set(load_file(str(tmp_path / "a" / "adapter.safetensors")))
    assert keys and all(".loras.a." in k for k in keys)  # the shared copy is written once, under loras
    fresh = tiny_model("roberta")
    for name in "ab":
        assert fresh.load_adapter(str(tmp_path / name)) == name
    fresh.set_active_adapters(MultiTask("a", "b"))
    torch.testing.assert_close(hidden_with(fresh, inputs, task_ids=[1, 1, 0, 0]), expected, rtol=0, atol=1e-6)


def test_unshare_and_delete_leave_independent_and_clean_modules():
    model = tiny_model("bert")
    before = set(model.state_dict())
    model.add_adapter("a", config="mtl_lora")
    model.add_adapter("b", config="mtl_lora")
    model.share_parameters("a,b")
    model.unshare_parameters(MultiTask("a", "b"))
    assert not any(".shared_parameters." in k for k in model.state_dict())
    for a, b in zip(_mtl_modules(model, "a"), _mtl_modules(model, "b")):
        assert a.lora_A is not b.lora_A and torch.equal(a.lora_A, b.lora_A)
    model.share_parameters(["a", "b"], name="a")
    model.delete_adapter("a")  # the share named like it goes with it
    assert not any(".shared_parameters." in k for k in model.state_dict())
    model.share_parameters(["b"])
    model.delete_adapter("b")
    assert set(model.state_dict()) == before


@pytest.mark.parametrize("setup, error, field", [
    ((["a", "s"],), InvalidAdapterConfig, "adapter_names"),  # a bottleneck adapter
    ((["a", "zz"],), AdapterNameNotFound, "adapter_names"),
    ((["a", "b"], None, "c"), InvalidAdapterConfig, "reference_adapter_name"),
    ((["a", "r4"],), InvalidAdapterConfig, "r"),  # another rank: A and B cannot be one pair
])
def test_share_parameters_refusals(setup, error, field):
    model = _two_tasks("bert")
    model.add_adapter("s", config="seq_bn")
    model.add_adapter("r4", config="mtl_lora[r=4,n_up_projection=3]")
    with pytest.raises(error) as info:
        model.share_parameters(*setup)
    assert info.value.field == field
    assert not any(".shared_parameters." in k for k in model.state_dict())


# --- MTL-LoRA: refusals --------------------------------------------------------------------------------------
@pytest.mark.parametrize("arch, config, field", [
    ("bert", "mtl_lora[task_specific_matrix_type='linear']", "task_specific_matrix_type"),
    ("bert", "mtl_lora[use_dora=True]", "use_dora"),
    ("gpt2", "mtl_lora", "selfattn_lora"),
    ("qwen2", "mtl_lora", "architecture"),
    ("modernbert", "mtl_lora[selfattn_lora=False,output_lora=True]", "architecture"),
])
def test_mtl_lora_refusals_leave_nothing(arch, config, field):
    model = tiny_model(arch)
    before = set(model.state_dict())
    with pytest.raises(InvalidAdapterConfig) as info:
        model.add_adapter("t", config=config)
    assert info.value.field == field
    assert "t" not in model.adapter_engine.configs and set(model.state_dict()) == before
    model.add_adapter("t", config="lora")  # the name is free again and plain LoRA still works


def test_mtl_lora_on_gpt2_without_the_fused_projection_runs():
    model = tiny_model("gpt2")
    inputs = tiny_inputs()
    base = hidden(model, inputs)
    model.add_adapter("t", config="mtl_lora[selfattn_lora=False,intermediate_lora=True]", set_active=True)
    randomise(_mtl_modules(model, "t"), std=0.3)
    assert (hidden(model, inputs) - base).abs().max() > 1e-3


def test_merging_mtl_lora_is_refused_and_changes_nothing():
    model = _two_tasks("bert")
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    with pytest.raises(InvalidAdapterConfig) as info:
        model.merge_adapter("a")
    assert info.value.field == "architecture"
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())


def test_multi_task_block_nesting_and_serialisation():
    from adapters_client.composition import Parallel, parse_composition, setup_from_dict, setup_to_dict

    block = MultiTask("a", Stack("c", "b"))
    assert setup_from_dict(setup_to_dict(block)) == block and block.flatten() == {"a", "b", "c"}
    assert parse_composition(Stack(MultiTask("a", "b"))) is not None
    with pytest.raises(InvalidComposition):
        parse_composition(MultiTask("a", Parallel("b", "c")))
    with pytest.raises(InvalidComposition):
        parse_composition(Parallel("a", MultiTask("b", "c")))
    model = tiny_model("bert")
    model.add_adapter("a", config="mtl_lora")
    model.add_adapter("s", config="seq_bn")
    model.set_active_adapters(MultiTask("a", "s"))
    with pytest.raises(InvalidComposition, match="MultiTask"):  # only LoRA runs MultiTask, as in the library
        hidden_with(model, tiny_inputs(batch=2), task_ids=[0, 1])


def test_mtl_lora_under_parallel_and_an_adapter_setup_context():
    from adapters_client import AdapterSetup, Parallel

    model = _two_tasks("bert", share=True)
    model.unshare_parameters(["a", "b"])
    randomise(_mtl_modules(model, "b"), seed=9, std=0.3)  # b's own A and B again
    inputs = tiny_inputs(batch=2)
    model.set_active_adapters(Parallel("a", "b"))
    branches = hidden_with(model, inputs)
    torch.testing.assert_close(branches[:2], _alone(model, inputs, slice(None), "a"), rtol=0, atol=2e-5)
    torch.testing.assert_close(branches[2:], _alone(model, inputs, slice(None), "b"), rtol=0, atol=2e-5)
    model.set_active_adapters(None)
    with AdapterSetup(MultiTask("a", "b")):
        routed = hidden_with(model, inputs, task_ids=[1, 0])
    torch.testing.assert_close(routed, torch.cat([branches[2:3], branches[1:2]]), rtol=0, atol=2e-5)


def test_save_pretrained_keeps_the_shares(tmp_path):
    """``save_pretrained`` / ``from_pretrained`` bring shared MTL-LoRA adapters back tied: one A and B per
    projection for both, which then train together."""
    from adapters_client.model import AutoAdapterModel

    model = _two_tasks("bert", share=True)
    model.add_adapter("c", config="mtl_lora[n_up_projection=3]")  # not shared: stays on its own
    model.set_active_adapters(MultiTask("a", "b"))
    inputs = tiny_inputs(batch=4)
    expected = hidden_with(model, inputs, task_ids=[1, 0, 0, 1])
    model.save_pretrained(str(tmp_path))
    setup = json.loads((tmp_path / "adapter_setup.json").read_text())
    assert setup["shared_parameters"] == {"a,b": ["a", "b"]}
    again = AutoAdapterModel.from_pretrained(str(tmp_path)).eval()
    torch.testing.assert_close(hidden_with(again, inputs, task_ids=[1, 0, 0, 1]), expected, rtol=0, atol=1e-6)
    for a, b, c in zip(_mtl_modules(again, "a"), _mtl_modules(again, "b"), _mtl_modules(again, "c")):
        assert a.lora_A is b.lora_A and a.lora_B is b.lora_B
        assert c.lora_A is not a.lora_A
