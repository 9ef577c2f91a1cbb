"""Prefix tuning semantics that hold on every architecture it supports (GPT-2: no library reference,
adapters 1.3.0's GPT-2 prefix has no effect on the output)."""

from __future__ import annotations

import pytest
import torch

from tests.client.engine_helpers import hidden, randomise, tiny_inputs, tiny_model

SPEC = "prefix_tuning[prefix_length=3,bottleneck_size=8]"


def _prefixed(arch):
    model = tiny_model(arch)
    model.add_adapter("p", config=SPEC, set_active=True)
    randomise(model.get_adapter("p"), seed=4, std=0.5)
    return model


def test_gpt2_prefix_keeps_attention_causal():
    model = _prefixed("gpt2")
    inputs = tiny_inputs(batch=1)
    inputs["attention_mask"] = torch.ones_like(inputs["attention_mask"])
    changed = {k: v.clone() for k, v in inputs.items()}
    changed["input_ids"][0, -1] = (changed["input_ids"][0, -1] + 1) % 99
    a, b = hidden(model, inputs), hidden(model, changed)
    torch.testing.assert_close(a[:, :-1], b[:, :-1])  # earlier positions never see the last token
    assert not torch.allclose(a[:, -1], b[:, -1])
    assert (a - hidden(tiny_model("gpt2"), inputs)).abs().max() > 1e-3  # the prefix is used


@pytest.mark.parametrize("arch", ["bert", "gpt2"])
def test_prefix_padding_mask_matches_unpadded_rows(arch):
    model = _prefixed(arch)
    inputs = tiny_inputs(batch=2)
    inputs["attention_mask"] = torch.ones_like(inputs["attention_mask"])
    full = hidden(model, inputs)
    padded = dict(inputs, attention_mask=inputs["attention_mask"].clone())
    padded["attention_mask"][1, -2:] = 0
    out = hidden(model, padded)
    torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)  # row 0 is unchanged by row 1's padding
    short = {k: v[1:, :-2] for k, v in inputs.items()}
    torch.testing.assert_close(out[1, :-2], hidden(model, short)[0], atol=1e-5, rtol=1e-5)


def test_stacked_prefixes_and_skip_layers():
    model = _prefixed("bert")
    model.add_adapter("q", config=SPEC)
    randomise(model.get_adapter("q"), seed=6, std=0.5)
    inputs = tiny_inputs()
    one = hidden(model, inputs)
    model.set_active_adapters(["p", "q"])
    both = hidden(model, inputs)
    assert not torch.allclose(one, both)
    model.set_active_adapters("p", skip_layers=[0, 1])
    torch.testing.assert_close(hidden(model, inputs), hidden(tiny_model("bert"), inputs))
