"""Hooks that fail loudly: missing hook targets at attach time, sites that never ran at the first forward."""

from __future__ import annotations

import inspect

import pytest
import torch
import transformers
from torch import nn
from torch.nn import functional as F

from adapters_client.errors import EngineHookError, HookNotRun, HookTargetMissing

from .engine_helpers import hidden, randomise, tiny_config, tiny_inputs, tiny_model


def _active(model, name: str, config: str):
    model.add_adapter(name, config=config)
    randomise(model.adapter_engine.modules_of(name))
    model.set_active_adapters(name)
    return model


def _assert_names_place(error: EngineHookError, arch: str, module_part: str) -> None:
    text = str(error)
    assert arch in text and module_part in text and transformers.__version__ in text
    assert error.details["transformers_version"] == transformers.__version__
    assert module_part in error.details["module"]


def test_missing_layer_norm_is_refused_when_the_engine_attaches():
    from transformers import AutoModel

    from adapters_client.model import AdapterModel

    base = AutoModel.from_config(tiny_config("bert"))
    base.encoder.layer[1].output.LayerNorm = nn.Identity()  # as if transformers had moved it
    with pytest.raises(HookTargetMissing) as info:
        AdapterModel(base)
    assert info.value.code == "hook_target_missing"
    _assert_names_place(info.value, "bert", "encoder.layer.1.output.LayerNorm")


def test_missing_projection_is_refused_with_its_path():
    from transformers import AutoModel

    from adapters_client.model import AdapterModel

    base = AutoModel.from_config(tiny_config("distilbert"))
    del base.transformer.layer[0].ffn.lin1
    with pytest.raises(HookTargetMissing) as info:
        AdapterModel(base)
    _assert_names_place(info.value, "distilbert", "ffn.lin1")


def test_attention_without_a_cache_argument_refuses_prefix_tuning():
    model = tiny_model("bert")
    attention = model.base_model.encoder.layer[0].attention.self

    def forward(hidden_states, attention_mask=None, **kwargs):  # no cache / past_key_values parameter
        return type(attention).forward(attention, hidden_states, attention_mask, **kwargs)

    attention.forward = forward
    with pytest.raises(HookTargetMissing) as info:
        model.add_adapter("p", config="prefix_tuning")
    _assert_names_place(info.value, "bert", "encoder.layer.0.attention.self")
    assert "cache" in str(info.value)
    assert "p" not in model.adapters_config  # nothing half-added


@pytest.mark.parametrize("arch", ["bert", "roberta"])
def test_cache_dropped_by_transformers_is_caught_at_the_first_forward(arch):
    """A release that stops using the cache argument would leave the prefix unused: HookNotRun, not output.

    Without an attention mask nothing else notices (with one, the widened mask no longer fits and the
    attention itself fails loudly, as transformers 5.24 did before the cache argument was looked up).
    """
    model = _active(tiny_model(arch), "p", "prefix_tuning")
    attention = model.base_model.encoder.layer[1].attention.self
    original = attention.forward

    def forward(*args, **kwargs):
        for name in ("cache", "past_key_values", "past_key_value"):
            kwargs.pop(name, None)
        return original(*args, **kwargs)

    forward.__signature__ = inspect.signature(original)
    attention.forward = forward
    with pytest.raises(HookNotRun) as info:
        hidden(model, {"input_ids": tiny_inputs()["input_ids"]})
    assert info.value.code == "hook_not_run"
    _assert_names_place(info.value, arch, "encoder.layer.1.attention.self")


def test_host_that_stops_calling_the_hooked_dropout_is_caught():
    model = _active(tiny_model("bert"), "a", "seq_bn")
    output = model.base_model.encoder.layer[0].output

    def forward(hidden_states, input_tensor):  # a "new release" that skips self.dropout
        return output.LayerNorm(output.dense(hidden_states) + input_tensor)

    output.forward = forward
    with pytest.raises(HookNotRun) as info:
        hidden(model, tiny_inputs())
    _assert_names_place(info.value, "bert", "encoder.layer.0.output.dropout")


def test_host_that_stops_calling_its_layer_norm_module_is_caught():
    # without original_ln_after the adapter's result replaces the host LayerNorm's output
    model = _active(tiny_model("bert"), "a", "seq_bn[original_ln_after=False]")
    output = model.base_model.encoder.layer[1].output

    def forward(hidden_states, input_tensor):  # LayerNorm applied functionally: the override never lands
        x = output.dropout(output.dense(hidden_states)) + input_tensor
        ln = output.LayerNorm
        return F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)

    output.forward = forward
    with pytest.raises(HookNotRun) as info:
        hidden(model, tiny_inputs())
    _assert_names_place(info.value, "bert", "encoder.layer.1.output.LayerNorm")


def test_lora_projection_not_called_is_caught():
    model = _active(tiny_model("bert"), "l", "lora")
    attention = model.base_model.encoder.layer[0].attention.self
    value = attention.value
    attention.value = nn.Linear(value.in_features, value.out_features)  # the hooked module is bypassed
    attention.value.load_state_dict({k: v for k, v in value.state_dict().items() if "loras" not in k})
    with pytest.raises(HookNotRun) as info:
        hidden(model, tiny_inputs())
    _assert_names_place(info.value, "bert", "encoder.layer.0.attention.self.value")


@pytest.mark.parametrize("arch,config", [("bert", "seq_bn"), ("gpt2", "lora"), ("distilbert", "prefix_tuning"),
                                         ("roberta", "prompt_tuning"), ("gpt2", "prefix_tuning")])
def test_audit_passes_once_and_runs_again_after_a_change(arch, config):
    model = _active(tiny_model(arch), "a", config)
    engine = model.adapter_engine
    first = hidden(model, tiny_inputs())
    assert len(engine._audited) == 1
    torch.testing.assert_close(hidden(model, tiny_inputs()), first)
    assert len(engine._audited) == 1  # later forwards of the same setup are not audited again
    model.add_adapter("b", config="seq_bn")
    model.set_active_adapters("a")
    hidden(model, tiny_inputs())
    assert len(engine._audited) == 2  # a changed model is audited again


def test_skipped_layers_are_not_expected_to_run():
    model = tiny_model("bert")
    model.add_adapter("a", config="seq_bn")
    randomise(model.adapter_engine.modules_of("a"))
    model.set_active_adapters("a", skip_layers=[0])
    assert torch.isfinite(hidden(model, tiny_inputs())).all()
    expected = sorted(model.adapter_engine.expected_sites().values())
    assert expected == ["encoder.layer.1.output.dropout"]
