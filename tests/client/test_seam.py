"""The seam between the engine and its methods and architectures (issue 11, step 1).

- the method registry (configs/methods.py) is the one table for names, config classes and state-dict segments;
- a method registered here, in a test, attaches through the registry without any change to engine.py;
- every per-architecture fact is a field of the architecture's row (adding an architecture is one row).
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from dataclasses import dataclass, field
from typing import NamedTuple, Optional

import pytest
import torch
from safetensors.torch import load_file, save_file
from torch import nn

import adapters_client.formats as formats
from adapters_client import rules
from adapters_client.architectures import ARCHITECTURES, PREFIX_ROUTES, ArchSpec
from adapters_client.composition import Average, BatchSplit, Parallel, Stack
from adapters_client.configs import (
    ADAPTER_CONFIGS, ADAPTER_SEGMENTS, MethodConfig, MethodSpec, PrefixTuningConfig, canonical_name,
    config_from_dict, get_method, is_adapter_key, load_config, method_for_config, method_name, register_method,
    registered_methods, unregister_method,
)
from adapters_client.errors import IncompatibleAdapter, InvalidAdapterConfig, InvalidComposition
from adapters_client.hooks import note_ran
from adapters_client.methods.composable import ComposableLayer, last_name
from tests.client.engine_helpers import hidden, randomise, tiny_config, tiny_inputs, tiny_model


# --- the registry itself -------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", registered_methods(), ids=lambda m: m.name)
def test_every_preset_round_trips_its_name_and_dict(method):
    assert method.presets, method.name
    for preset in method.presets:
        config = load_config(preset)
        assert method_for_config(config) is method
        assert canonical_name(preset.upper()) == preset
        again = config_from_dict(config.to_dict())
        assert again == config and isinstance(again, method.config_class)
        assert method_for_config(again) is method
        assert method_name(config) == method.short_name(config)


@pytest.mark.parametrize("alias, target", sorted(rules.METHOD_ALIASES.items()))
def test_every_alias_belongs_to_exactly_one_method(alias, target):
    owners = [m for m in registered_methods() if alias in m.aliases]
    assert len(owners) == 1 and owners[0].aliases[alias] == target
    assert load_config(alias) == load_config(target)


def test_presets_and_segments_are_unique_and_read_from_the_registry():
    presets = [p for m in registered_methods() for p in m.presets]
    segments = [s for m in registered_methods() for s in m.segments]
    assert len(presets) == len(set(presets)) and list(ADAPTER_CONFIGS) == presets
    assert len(segments) == len(set(segments)) and list(ADAPTER_SEGMENTS) == segments
    assert {m.name for m in registered_methods()} >= {"bottleneck", "lora", "prefix_tuning", "prompt_tuning"}
    assert get_method("lora").presets["ia3"] is ADAPTER_CONFIGS["ia3"]


def test_registry_refuses_clashes_and_bad_specs():
    lora = get_method("lora")
    with pytest.raises(ValueError, match="already registered"):
        register_method(lora)
    with pytest.raises(ValueError, match="segment 'loras' belongs to 'lora'"):
        register_method(dataclasses.replace(lora, name="other", presets={}, architecture_keys=()))
    with pytest.raises(ValueError, match="scope"):
        dataclasses.replace(lora, scope="global")
    with pytest.raises(ValueError, match="attach"):
        dataclasses.replace(lora, attach="no_colon")
    with pytest.raises(InvalidAdapterConfig):
        get_method("no_such_method")
    assert [m.name for m in registered_methods()].count("other") == 0


@pytest.mark.parametrize("method", registered_methods(), ids=lambda m: m.name)
def test_every_attach_point_resolves(method):
    target = method.resolve_attach()
    assert callable(target)


def test_per_layer_methods_share_one_composition_dispatcher():
    from adapters_client.methods.bottleneck import BottleneckLayer
    from adapters_client.methods.lora import LoRALayer

    engine = tiny_model("gpt2").adapter_engine
    assert engine.all_sites() and all(isinstance(site, ComposableLayer) for site in engine.all_sites())
    for cls in (BottleneckLayer, LoRALayer):
        own = set(vars(cls))
        assert not own & {"compose", "compose_stack", "compose_parallel", "compose_batch_split",
                          "compose_average", "_parallel", "_average", "_batch_split", "_stack"}, cls


def test_registry_is_torch_free():
    """The hub imports configs (and with it the registry) in processes without torch."""
    code = ("import sys; import adapters_client.configs as c; "
            "assert c.ADAPTER_SEGMENTS and c.registered_methods(); "
            "assert 'torch' not in sys.modules, sorted(m for m in sys.modules if m.startswith('torch'))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr


# --- one list of segments: save, load, whole-model save, summary --------------------------------------------
def test_save_load_and_whole_model_save_use_the_same_segment_list():
    import adapters_client.model_mixin as model_mixin
    import adapters_client.pretrained as pretrained

    assert formats._ADAPTER_SEGMENTS is ADAPTER_SEGMENTS
    assert "prefix_gates" in ADAPTER_SEGMENTS and "prefix_tunings" in ADAPTER_SEGMENTS
    assert pretrained.is_adapter_key is is_adapter_key and model_mixin.is_adapter_key is is_adapter_key
    for segment in list(ADAPTER_SEGMENTS) + list(formats._FUSION_SEGMENTS):
        assert is_adapter_key(f"encoder.layer.0.attention.self.{segment}.a.weight")
        assert is_adapter_key(f"{segment}.a.weight")
    assert not is_adapter_key("encoder.layer.0.attention.self.query.weight")


def _gated_prefix_folder(tmp_path):
    """A prefix-tuning folder as the adapters library writes it for use_gating=True (two gates per layer)."""
    model = tiny_model()
    model.add_adapter("p", config="prefix_tuning[prefix_length=3,bottleneck_size=8]")
    folder = tmp_path / "gated"
    model.save_adapter(str(folder), "p")
    meta = json.loads((folder / "adapter_config.json").read_text())
    meta["config"]["use_gating"] = True
    meta["config"]["shared_gating"] = False
    (folder / "adapter_config.json").write_text(json.dumps(meta))
    state = load_file(str(folder / "adapter.safetensors"))
    for layer in range(2):
        prefix = f"bert.encoder.layer.{layer}.attention.self.prefix_tuning.prefix_gates.p"
        state[f"{prefix}.weight"] = torch.zeros(2, 32)
        state[f"{prefix}.bias"] = torch.zeros(2)
    save_file(state, str(folder / "adapter.safetensors"))
    return folder


def test_gated_prefix_tuning_loads_on_every_path(tmp_path):
    """Gates were once silently dropped, then refused; now they are part of the adapter (library parity of the
    outputs: tests/parity/test_unions_library.py and the golden cases methods/<arch>-prefix_tuning_gated)."""
    model = tiny_model()
    model.add_adapter("p", config=PrefixTuningConfig(use_gating=True))
    assert any(".prefix_gates.p." in k for k in model.base_model.state_dict())
    folder = _gated_prefix_folder(tmp_path)
    loaded = tiny_model()
    loaded.load_adapter(str(folder), set_active=True)
    gates = [k for k in loaded.base_model.state_dict() if ".prefix_gates.p." in k]
    assert len(gates) == 4
    # whole-model folder with that adapter inside: from_pretrained loads it too
    whole = tmp_path / "whole"
    tiny_model().save_pretrained(str(whole))
    (whole / "adapters").mkdir(exist_ok=True)
    (folder).rename(whole / "adapters" / "p")
    from adapters_client import AutoAdapterModel

    again = AutoAdapterModel.from_pretrained(str(whole)).eval()
    again.set_active_adapters("p")
    torch.testing.assert_close(hidden(again, tiny_inputs()), hidden(loaded, tiny_inputs()))


def test_prefix_without_gates_still_loads(tmp_path):
    model = tiny_model()
    model.add_adapter("p", config="prefix_tuning[prefix_length=3,bottleneck_size=8]", set_active=True)
    randomise(model.get_adapter("p"))
    model.save_adapter(str(tmp_path / "p"), "p")
    other = tiny_model()
    other.load_adapter(str(tmp_path / "p"), set_active=True)
    torch.testing.assert_close(hidden(other, tiny_inputs()), hidden(model, tiny_inputs()))


# --- a method registered by a test attaches through the seam -------------------------------------------------
@dataclass(frozen=True, eq=False)
class ToyScaleConfig(MethodConfig):
    """A per-layer method for tests: each layer's output times a learned vector."""

    family = "toy_scale"

    architecture: Optional[str] = "toy_scale"
    leave_out: list = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.architecture != "toy_scale":
            self._fail("architecture", f"must be 'toy_scale', got {self.architecture!r}")
        self._layer_list("leave_out")


class ToyState(NamedTuple):
    hidden: torch.Tensor
    last: Optional[str] = None


class ToyScale(nn.Module):
    def __init__(self, size: int):
        super().__init__()
        self.scale = nn.Parameter(torch.ones(size))


class ToyScaleSite(ComposableLayer):
    """One per layer: a ``toy_scales`` dict on the layer and a forward hook that composes through the base."""

    def __init__(self, engine, layer, layer_idx: int):
        self.engine, self.layer_idx = engine, layer_idx
        self.path = f"{engine.spec.layers}.{layer_idx}"
        layer.add_module("toy_scales", nn.ModuleDict())
        self.adapters = layer.toy_scales
        layer.register_forward_hook(self._on_output)

    def add(self, name, config) -> bool:
        if self.layer_idx in config.leave_out:
            return False
        self.adapters[name] = ToyScale(self.engine.hidden_size)
        return True

    def remove(self, name) -> None:
        del self.adapters[name]

    def _on_output(self, module, args, output):
        setup = self.engine.setup_for(self)
        if setup is None:
            return None
        note_ran(id(self))
        tensor = output[0] if isinstance(output, tuple) else output
        result = self.compose(setup, ToyState(tensor), 0).hidden
        return (result,) + tuple(output[1:]) if isinstance(output, tuple) else result

    def map_state(self, state, fn):
        return state._replace(hidden=fn(state.hidden))

    def batch_size(self, state) -> int:
        return state.hidden.shape[0]

    def compose_single(self, name, state):
        return ToyState(state.hidden * self.adapters[name].scale, name)

    def join_parallel(self, state, parts):
        return ToyState(torch.cat([p.hidden for p in parts]), last_name(parts))

    join_batch_split = join_parallel

    def join_average(self, block, state, parts):
        parts = [p for p in parts if p is not None]
        return ToyState(self.weighted_mean(block, [p.hidden for p in parts], like=state.hidden), last_name(parts))


def inject_toy(engine) -> list:
    return [ToyScaleSite(engine, layer, idx) for idx, layer in enumerate(engine.layers())]


@pytest.fixture
def toy_method():
    spec = register_method(MethodSpec(
        name="toy_scale", config_class=ToyScaleConfig, presets={"toy_scale": ToyScaleConfig},
        segments=("toy_scales",), scope="layer", attach="tests.client.test_seam:inject_toy",
        architecture_keys=("toy_scale",),
    ))
    try:
        yield spec
    finally:
        unregister_method("toy_scale")
    assert "toy_scales" not in ADAPTER_SEGMENTS and "toy_scale" not in ADAPTER_CONFIGS


def test_a_registered_method_attaches_without_touching_the_engine(toy_method, tmp_path):
    inputs = tiny_inputs()
    model = tiny_model()
    plain = hidden(model, inputs)
    model.add_adapter("t", config="toy_scale[leave_out=[1]]", set_active=True)
    assert method_name(model.adapters_config["t"]) == "toy_scale"
    assert len(model.get_adapter("t")) == 1  # layer 1 left out
    torch.testing.assert_close(hidden(model, inputs), plain)  # identity at init
    randomise(model.get_adapter("t"), std=1.0)
    changed = hidden(model, inputs)
    assert (changed - plain).abs().max() > 1e-3
    # save/load read the segments from the registry: the toy weights travel, under the library-style key
    model.save_adapter(str(tmp_path / "t"), "t")
    keys = set(load_file(str(tmp_path / "t" / "adapter.safetensors")))
    assert keys == {"bert.encoder.layer.0.toy_scales.t.scale"}
    other = tiny_model()
    other.load_adapter(str(tmp_path / "t"), load_as="u", set_active=True)
    torch.testing.assert_close(hidden(other, inputs), changed)
    # whole-model save keeps toy weights out of the backbone and brings them back with the adapter
    model.save_pretrained(str(tmp_path / "whole"))
    backbone = load_file(str(tmp_path / "whole" / "model.safetensors"))
    assert not any("toy_scales" in k for k in backbone)
    from adapters_client import AutoAdapterModel

    again = AutoAdapterModel.from_pretrained(str(tmp_path / "whole")).eval()
    torch.testing.assert_close(hidden(again, inputs), changed)
    summary = {row["name"]: row for row in model.adapter_summary(as_dict=True)}
    assert summary["t"]["#param"] == 32
    model.delete_adapter("t")
    assert model.get_adapter("t") == [] and not model.has_adapter("t")
    torch.testing.assert_close(hidden(model, inputs), plain)


def test_a_registered_method_composes_through_the_shared_base(toy_method):
    inputs = tiny_inputs()
    model = tiny_model()
    for name in ("a", "b"):
        model.add_adapter(name, config={"architecture": "toy_scale"})
        randomise(model.get_adapter(name), seed=len(name) + ord(name), std=1.0)
    outputs = {}
    for setup in ("a", "b", Stack("a", "b"), Average("a", "b"), Parallel("a", "b")):
        model.set_active_adapters(setup)
        outputs[setup if isinstance(setup, str) else repr(setup)] = hidden(model, inputs)
    assert (outputs["a"] - outputs["b"]).abs().max() > 1e-3
    torch.testing.assert_close(outputs[repr(Parallel("a", "b"))], torch.cat([outputs["a"], outputs["b"]]))
    assert (outputs[repr(Average("a", "b"))] - outputs["a"]).abs().max() > 1e-3
    model.set_active_adapters(BatchSplit("a", "b", batch_sizes=[1, 1]))
    split = hidden(model, inputs)
    torch.testing.assert_close(split, torch.cat([outputs["a"][:1], outputs["b"][1:]]))
    model.set_active_adapters(BatchSplit("a", "b", batch_sizes=[1, 5]))
    with pytest.raises(InvalidComposition, match="does not match BatchSplit sizes"):
        hidden(model, inputs)


def test_engine_and_model_code_name_no_method():
    """The engine, the model mixin and the pretrained module dispatch through the registry only."""
    from pathlib import Path

    root = Path(__file__).resolve().parents[2] / "adapters_client"
    for module in ("engine.py", "pretrained.py", "methods/registry.py"):
        text = (root / module).read_text()
        for name in ("LoRAConfig", "PrefixTuningConfig", "PromptTuningConfig", "LoRALayer", "prefix_tunings"):
            assert name not in text, f"{module} names {name}"


# --- every per-architecture fact is a typed field of the row -------------------------------------------------
def test_rows_are_typed_and_hold_no_side_tables():
    names = {f.name for f in dataclasses.fields(ArchSpec)}
    assert "extra" not in names
    assert {"model_class", "prompt_embeddings", "prefix_route", "prefix_location", "last_token_heads"} <= names
    for model_type, spec in ARCHITECTURES.items():
        # plugin-interface rows (no *AdapterModel in the library) carry the base model's class, as it writes
        assert spec.model_type == model_type and spec.model_class.endswith(
            "Model" if spec.library_interface else "AdapterModel")
        assert spec.prefix_route in PREFIX_ROUTES + (None,)
    assert sorted(t for t, s in ARCHITECTURES.items() if s.last_token_heads) == ["gpt2", "llama", "mistral", "qwen2"]
    assert ARCHITECTURES["gpt2"].prompt_embeddings is None
    with pytest.raises(ValueError, match="prefix_route"):
        dataclasses.replace(ARCHITECTURES["bert"], prefix_route="somewhere")


def test_a_new_architecture_is_one_row(monkeypatch, tmp_path):
    """A copy of BERT under another model type: class name, head rule, prompt and prefix support from its row."""
    from transformers import BertModel

    from adapters_client.model import AdapterModel

    row = dataclasses.replace(ARCHITECTURES["bert"], model_type="toy-bert", model_class="ToyBertAdapterModel",
                              prompt_embeddings=None, prefix_route=None, last_token_heads=True)
    monkeypatch.setitem(ARCHITECTURES, "toy-bert", row)
    torch.manual_seed(0)
    base = BertModel(tiny_config("bert"))
    base.config.model_type = "toy-bert"
    model = AdapterModel(base).eval()
    assert model.model_class_name == "ToyBertAdapterModel"
    assert not model.supports_head_type("masked_lm") and model.supports_head_type("classification")
    model.add_adapter("a", config="seq_bn", set_active=True)
    model.save_adapter(str(tmp_path / "a"), "a")
    assert json.loads((tmp_path / "a" / "adapter_config.json").read_text())["model_class"] == "ToyBertAdapterModel"
    with pytest.raises(InvalidAdapterConfig, match="prompt tuning is not supported for toy-bert"):
        model.add_adapter("p", config="prompt_tuning")
    with pytest.raises(InvalidAdapterConfig, match="prefix tuning is not supported for toy-bert"):
        model.add_adapter("q", config="prefix_tuning")
    assert not model.has_adapter("p") and not model.has_adapter("q")


def test_unknown_model_type_is_still_refused():
    from transformers import BertModel

    from adapters_client.model import AdapterModel

    base = BertModel(tiny_config("bert"))
    base.config.model_type = "not-in-the-table"
    with pytest.raises(IncompatibleAdapter):
        AdapterModel(base)
