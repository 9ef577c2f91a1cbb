"""Prefix tuning semantics that hold on every architecture it supports (GPT-2: no library reference,
adapters 1.3.0's GPT-2 prefix has no effect on the output; DistilBERT: the prefix enters through its key/value
projections, checked against attention written out by hand, in both attention modes)."""

from __future__ import annotations

import pytest
import torch

from tests.client.engine_helpers import hidden, randomise, tiny_config, tiny_inputs, tiny_model

SPEC = "prefix_tuning[prefix_length=3,bottleneck_size=8]"


def _prefixed(arch, attention=None):
    model = tiny_model(arch) if attention is None else _model(arch, attention)
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


def _model(arch, attention):
    from adapters_client import AutoAdapterModel

    torch.manual_seed(0)
    return AutoAdapterModel.from_config(tiny_config(arch), attn_implementation=attention).eval()


# the last case stacks a bottleneck that reads the attention input as its residual (shapes must line up)
@pytest.mark.parametrize("arch, attention, extra", [
    ("bert", None, None), ("gpt2", None, None), ("distilbert", "eager", None), ("distilbert", "sdpa", None),
    ("distilbert", "sdpa", "double_seq_bn[reduction_factor=4,original_ln_before=True]"),
])
def test_prefix_padding_mask_matches_unpadded_rows(arch, attention, extra):
    model = _prefixed(arch, attention)
    if extra is not None:
        from adapters_client import Stack

        model.add_adapter("b", config=extra)
        randomise(model.get_adapter("b"), seed=8)
        model.set_active_adapters(Stack("b", "p"))
    inputs = tiny_inputs(batch=2)
    inputs["attention_mask"] = torch.ones_like(inputs["attention_mask"])
    full = hidden(model, inputs)
    padded = dict(inputs, attention_mask=inputs["attention_mask"].clone())
    padded["attention_mask"][1, -2:] = 0
    out = hidden(model, padded)
    torch.testing.assert_close(out[0], full[0], atol=1e-5, rtol=1e-5)  # row 0 is unchanged by row 1's padding
    short = {k: v[1:, :-2] for k, v in inputs.items()}
    torch.testing.assert_close(out[1, :-2], hidden(model, short)[0], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("arch", ["bert", "distilbert"])
def test_stacked_prefixes_and_skip_layers(arch):
    model = _prefixed(arch)
    model.add_adapter("q", config=SPEC)
    randomise(model.get_adapter("q"), seed=6, std=0.5)
    inputs = tiny_inputs()
    one = hidden(model, inputs)
    model.set_active_adapters(["p", "q"])
    both = hidden(model, inputs)
    assert not torch.allclose(one, both)
    model.set_active_adapters("p", skip_layers=[0, 1])
    torch.testing.assert_close(hidden(model, inputs), hidden(tiny_model(arch), inputs))


def _manual_first_attention(model, h, mask):
    """DistilBERT layer 0 self-attention over [prefix; sequence], written out with plain tensor ops."""
    attention = model.base_model.transformer.layer[0].attention
    pool = model.base_model.prefix_tuning.prefix_tunings["p"]["self"]
    prefix_k, prefix_v = pool(h.shape[0])[0]  # (batch, heads, prefix, head_dim)
    batch, length, dim = h.shape
    heads = prefix_k.shape[1]

    def split(x):
        return x.view(batch, -1, heads, dim // heads).transpose(1, 2)

    q = split(attention.q_lin(h))
    k = torch.cat([prefix_k, split(attention.k_lin(h))], dim=2)
    v = torch.cat([prefix_v, split(attention.v_lin(h))], dim=2)
    keep = torch.cat([torch.ones(batch, prefix_k.shape[2]), mask.float()], dim=1).bool()
    scores = (q @ k.transpose(2, 3)) / (dim // heads) ** 0.5
    scores = scores.masked_fill(~keep[:, None, None, :], torch.finfo(scores.dtype).min)
    context = (scores.softmax(-1) @ v).transpose(1, 2).reshape(batch, length, dim)
    return attention.out_lin(context)


@pytest.mark.parametrize("attention", ["eager", "sdpa"])
def test_distilbert_prefix_attention_matches_manual_computation(attention):
    model = _prefixed("distilbert", attention)
    inputs = tiny_inputs(batch=3)
    inputs["attention_mask"][2, -3:] = 0
    seen = {}

    def before(module, args, kwargs):
        seen.setdefault("h", args[0] if args else kwargs.get("hidden_states", kwargs.get("query")))

    def after(module, args, output):
        seen.setdefault("out", output[0])

    layer = model.base_model.transformer.layer[0].attention
    first = layer.register_forward_pre_hook(before, with_kwargs=True, prepend=True)  # the original input
    last = layer.register_forward_hook(after)
    hidden(model, inputs)
    first.remove(), last.remove()
    with torch.no_grad():
        expected = _manual_first_attention(model, seen["h"], inputs["attention_mask"])
    assert seen["out"].shape == expected.shape
    torch.testing.assert_close(seen["out"], expected, atol=1e-5, rtol=1e-5)


def test_distilbert_prefix_eager_and_sdpa_agree_and_attentions_cover_prefix():
    inputs = tiny_inputs()
    eager, sdpa = _prefixed("distilbert", "eager"), _prefixed("distilbert", "sdpa")
    torch.testing.assert_close(hidden(eager, inputs), hidden(sdpa, inputs), atol=1e-5, rtol=1e-5)
    with torch.no_grad():
        out = eager(**inputs, output_attentions=True)
    batch, length = inputs["input_ids"].shape
    assert out.attentions[0].shape == (batch, 2, length, 3 + length)  # queries: the sequence; keys: prefix too
    torch.testing.assert_close(out.attentions[0].sum(-1), torch.ones(batch, 2, length))


def test_distilbert_prefix_with_bottleneck_in_stack():
    """A bottleneck at the attention output sees the sequence rows only; with zero weights it changes nothing."""
    from adapters_client import Stack

    model = _prefixed("distilbert")
    inputs = tiny_inputs()
    alone = hidden(model, inputs)
    model.add_adapter("b", config="double_seq_bn[reduction_factor=4]")
    randomise(model.get_adapter("b"), std=0.0)
    model.set_active_adapters(Stack("b", "p"))
    torch.testing.assert_close(hidden(model, inputs), alone, atol=1e-5, rtol=1e-5)
    randomise(model.get_adapter("b"), seed=8)
    assert (hidden(model, inputs) - alone).abs().max() > 1e-3


@pytest.mark.parametrize("spec", [SPEC, "prefix_tuning_flat[prefix_length=2,leave_out=[0]]"])
def test_distilbert_prefix_trains_saves_and_reloads(spec, tmp_path):
    model = tiny_model("distilbert")
    inputs = tiny_inputs()
    base = hidden(model, inputs)
    model.add_adapter("p", config=spec)
    randomise(model.get_adapter("p"), seed=9, std=0.5)
    model.train_adapter("p")
    model(**inputs)[0].pow(2).mean().backward()
    grads = [p.grad for m in model.get_adapter("p") for p in m.parameters()]
    assert grads and all(g is not None and g.abs().sum() > 0 for g in grads)
    model.eval()
    expected = hidden(model, inputs)
    assert (expected - base).abs().max() > 1e-3
    model.save_adapter(str(tmp_path / "p"), "p")
    fresh = tiny_model("distilbert")
    fresh.load_adapter(str(tmp_path / "p"), set_active=True)
    torch.testing.assert_close(hidden(fresh, inputs), expected)
    fresh.set_active_adapters("p", skip_layers=[0, 1])
    torch.testing.assert_close(hidden(fresh, inputs), base)



def test_projection_mask_extension_formats():
    from adapters_client.errors import InvalidAdapterConfig
    from adapters_client.methods.prefix_tuning.projections import extend_mask

    keep = torch.tensor([[1, 1, 0]])
    assert extend_mask(keep, 2, queries=True).tolist() == [[1, 1, 1, 1, 0]]
    blocked = torch.finfo(torch.float32).min
    additive = torch.tensor([0.0, 0.0, blocked]).expand(1, 1, 3, 3)
    out = extend_mask(additive, 2, queries=True)
    assert out.shape == (1, 1, 5, 5) and (out[..., :2, :] == 0).all() and (out[..., 2:, :2] == 0).all()
    torch.testing.assert_close(out[..., 2:, 2:], additive)
    boolean = extend_mask(additive == 0, 2, queries=False)
    assert boolean.shape == (1, 1, 3, 5) and boolean[..., :2].all() and not boolean[..., 4].any()
    assert extend_mask(None, 2, queries=True) is None
    with pytest.raises(InvalidAdapterConfig, match="BlockMask") as caught:  # e.g. flex attention's mask
        extend_mask(type("BlockMask", (), {})(), 2, queries=True)
    assert caught.value.code == "invalid_config" and caught.value.field == "attn_implementation"
