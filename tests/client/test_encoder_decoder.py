"""Encoder-decoder architectures (BART): what the golden cases (tests/client/golden, ``*/bart-*``) do not cover.

The row's layer numbering and sites, the decoder's cross-attention site, LoRA and prefixes on the cross-attention,
step-by-step decoding with a cache, save/load round trips and the typed refusals.
"""

from __future__ import annotations

import pytest
import torch

from adapters_client import AutoAdapterModel
from adapters_client.architectures import get_spec
from adapters_client.errors import HookTargetMissing, InvalidAdapterConfig
from adapters_client.heads.errors import InvalidHead

from .engine_helpers import randomise, tiny_config, tiny_model

EOS = 2  # BartConfig's eos_token_id


def _inputs(batch: int = 2, length: int = 7, seed: int = 1) -> dict:
    """Encoder inputs whose attended text ends with <eos> (row 0 padded), decoder inputs of the same length."""
    generator = torch.Generator().manual_seed(seed)
    ids = torch.randint(3, 99, (batch, length), generator=generator)
    mask = torch.ones(batch, length, dtype=torch.long)
    mask[0, -2:] = 0
    for row in range(batch):
        ids[row, int(mask[row].sum()) - 1] = EOS
    decoder = torch.randint(3, 99, (batch, length), generator=generator)
    decoder[:, 0] = EOS
    return {"input_ids": ids, "attention_mask": mask, "decoder_input_ids": decoder}


def _bart(attn: str = "eager", seed: int = 0):
    torch.manual_seed(seed)
    return AutoAdapterModel.from_config(tiny_config("bart"), attn_implementation=attn).eval()


def _keys(model, name: str) -> list:
    return [k for k in model.state_dict() if f".{name}." in k]


# --- the row ------------------------------------------------------------------------------------------------
def test_bart_row_numbers_decoder_layers_after_the_encoder():
    spec = get_spec("bart")
    assert spec.encoder_decoder and spec.decoder_layers == "decoder.layers" and spec.layers == "encoder.layers"
    model = _bart()
    engine = model.adapter_engine
    assert engine.num_layers == 4 and engine.num_encoder_layers == 2
    assert [engine.layer_path(i) for i in range(4)] == ["encoder.layers.0", "encoder.layers.1",
                                                        "decoder.layers.0", "decoder.layers.1"]
    # leave_out uses the library's numbering: 0 = first encoder layer, 2 = first decoder layer
    model.add_adapter("a", config="seq_bn[leave_out=[0,2]]")
    keys = _keys(model, "a")
    assert not any(k.startswith(("model.encoder.layers.0.", "model.decoder.layers.0.")) for k in keys)
    assert any(k.startswith("model.encoder.layers.1.output_adapters.") for k in keys)
    assert any(k.startswith("model.decoder.layers.1.output_adapters.") for k in keys)


def test_cross_attention_site_exists_only_in_decoder_layers():
    model = _bart()
    for layer in model.model.encoder.layers:
        assert not hasattr(layer, "cross_attention_adapters")
    for layer in model.model.decoder.layers:
        assert hasattr(layer, "cross_attention_adapters")
    model.add_adapter("plain", config="seq_bn")  # cross_adapter defaults to False, as in the library
    assert not any("cross_attention_adapters" in k for k in _keys(model, "plain"))
    model.add_adapter("cross", config="seq_bn[cross_adapter=True,output_adapter=False]")
    keys = _keys(model, "cross")
    assert {k.split(".adapters.")[0] for k in keys} == {
        "model.decoder.layers.0.cross_attention_adapters", "model.decoder.layers.1.cross_attention_adapters"}


def test_cross_attention_adapter_changes_only_the_decoder():
    model = _bart()
    inputs = _inputs()
    with torch.no_grad():
        base = model(**inputs)
    model.add_adapter("cross", config="seq_bn[cross_adapter=True,output_adapter=False]")
    randomise(model.get_adapter("cross"), seed=4, std=0.3)
    model.set_active_adapters("cross")
    with torch.no_grad():
        out = model(**inputs)
    torch.testing.assert_close(out.encoder_last_hidden_state, base.encoder_last_hidden_state)
    assert (out.last_hidden_state - base.last_hidden_state).abs().max() > 1e-3


def test_lora_wraps_self_and_cross_attention_and_the_ffn():
    model = _bart()
    model.add_adapter("l", config="lora[attn_matrices=['q','k','v'],intermediate_lora=True,output_lora=True]")
    modules = {k.rsplit(".loras.", 1)[0].split(".", 4)[-1] for k in _keys(model, "l")}
    assert modules == {"self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "encoder_attn.q_proj",
                       "encoder_attn.k_proj", "encoder_attn.v_proj", "fc1", "fc2"}
    assert not any(k.startswith("model.encoder.") and "encoder_attn" in k for k in _keys(model, "l"))


def test_lora_and_a_bottleneck_on_the_same_projection_compose():
    """BART's output site hooks fc2, which LoRA wraps too: the site must see fc2's output with LoRA applied."""
    inputs = _inputs()
    model = _bart()
    model.add_adapter("l", config="lora[output_lora=True,selfattn_lora=False]")
    model.add_adapter("b", config="seq_bn")
    randomise(model.get_adapter("l") + model.get_adapter("b"), seed=6, std=0.3)
    model.set_active_adapters("l")
    with torch.no_grad():
        lora_only = model(**inputs).last_hidden_state
    model.merge_adapter("l")  # LoRA in the weights: the bottleneck alone now sees the same fc2 output
    model.set_active_adapters("b")
    with torch.no_grad():
        merged = model(**inputs).last_hidden_state
    model.reset_adapter()
    from adapters_client.composition import Stack

    model.set_active_adapters(Stack("l", "b"))
    with torch.no_grad():
        both = model(**inputs).last_hidden_state
    torch.testing.assert_close(both, merged, atol=1e-5, rtol=1e-5)
    assert (both - lora_only).abs().max() > 1e-3


def test_prefix_locations_follow_the_config_flags():
    model = _bart()
    model.add_adapter("all", config="prefix_tuning[prefix_length=3]")
    model.add_adapter("self", config="prefix_tuning[prefix_length=3,encoder_prefix=False,cross_prefix=False]")
    pool = model.model.prefix_tuning.prefix_tunings
    assert set(pool["all"]) == {"encoder_prefix", "self_prefix", "cross_prefix"}
    assert set(pool["self"]) == {"self_prefix"}
    model.add_adapter("dec", config="prefix_tuning[prefix_length=3,leave_out=[0,1,2]]")
    assert set(pool["dec"]) == {"self_prefix", "cross_prefix"}
    assert pool["dec"]["self_prefix"].n_layers == 1


def _full_and_stepped_logits(model, inputs: dict, first_steps: int = 3) -> tuple:
    """(logits of one forward over the whole decoder input without a cache, the same decoded step by step: the
    first ``first_steps`` positions at once, then one token per call with ``past_key_values`` and the encoder
    output passed back)."""
    with torch.no_grad():
        full = model(**inputs, use_cache=False).logits
        decoder = inputs["decoder_input_ids"]
        first = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                      decoder_input_ids=decoder[:, :first_steps], use_cache=True)
        encoder_outputs = (first.encoder_last_hidden_state,)
        steps, past = [first.logits], first.past_key_values
        assert past is not None
        for t in range(first_steps, decoder.shape[1]):
            out = model(attention_mask=inputs["attention_mask"], decoder_input_ids=decoder[:, t:t + 1],
                        encoder_outputs=encoder_outputs, past_key_values=past, use_cache=True)
            steps.append(out.logits)
            past = out.past_key_values
    return full, torch.cat(steps, dim=1)


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("config", ["prefix_tuning[prefix_length=3]", "seq_bn[cross_adapter=True]", "lora"])
def test_step_by_step_decoding_with_a_cache_equals_the_full_forward(attn, config):
    """A seq2seq LM head decoding token by token (past_key_values, the encoder output passed back) gives the
    logits of one forward over the whole decoder input; the prefixes stay out of the cache."""
    inputs = _inputs()
    model = _bart(attn)
    model.add_adapter("a", config=config)
    model.add_seq2seq_lm_head("a")
    randomise(model.get_adapter("a"), seed=7, std=0.3)
    model.set_active_adapters("a")
    full, stepped = _full_and_stepped_logits(model, inputs)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-4)


# --- heads ----------------------------------------------------------------------------------------------------
def test_sequence_heads_read_the_last_eos_of_the_input():
    inputs = _inputs()
    model = _bart()
    model.add_classification_head("c", num_labels=3)
    with torch.no_grad():
        logits = model(**inputs).logits
        hidden = model(**inputs, head="c", output_hidden_states=False)  # same head, named
        decoder_out = model.model(**inputs).last_hidden_state
    torch.testing.assert_close(hidden.logits, logits)
    rows = torch.arange(2)
    last_eos = torch.tensor([int(inputs["attention_mask"][r].sum()) - 1 for r in range(2)])
    expected = model.heads["c"](None, cls_output=decoder_out[rows, last_eos]).logits
    torch.testing.assert_close(logits, expected)


def test_rows_with_different_eos_counts_are_refused():
    inputs = _inputs()
    inputs["input_ids"][1, 1] = EOS  # row 1 has two <eos>
    model = _bart()
    model.add_classification_head("c")
    with pytest.raises(InvalidHead):
        model(**inputs)


def test_heads_the_library_does_not_offer_are_refused():
    model = _bart()
    for add in (lambda: model.add_tagging_head("t"), lambda: model.add_causal_lm_head("lm"),
                lambda: model.add_masked_lm_head("m"), lambda: model.add_multiple_choice_head("mc")):
        with pytest.raises(InvalidHead):
            add()
    assert not model.heads
    encoder_only = tiny_model("bert")
    with pytest.raises(InvalidHead):
        encoder_only.add_seq2seq_lm_head("s")


def test_seq2seq_head_is_tied_and_keeps_the_library_config():
    model = _bart()
    model.add_seq2seq_lm_head("s")
    head = model.heads["s"]
    assert head.get_output_embeddings().weight is model.model.get_input_embeddings().weight
    assert set(head.config) == {"head_type", "vocab_size", "layers", "activation_function", "layer_norm", "bias",
                                "shift_labels", "label2id"}
    labels = _inputs()["decoder_input_ids"]
    out = model(**_inputs(), labels=labels)
    assert out.loss is not None and out.loss.isfinite()


# --- save / load ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("config", ["double_seq_bn[cross_adapter=True]", "prefix_tuning[prefix_length=3]",
                                    "lora[attn_matrices=['q','k','v']]", "seq_bn_inv"])
def test_save_and_load_round_trip(config, tmp_path):
    inputs = _inputs()
    model = _bart()
    model.add_adapter("a", config=config)
    model.add_seq2seq_lm_head("a")
    randomise(model.get_adapter("a"), seed=8, std=0.3)
    model.set_active_adapters("a")
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_adapter(str(tmp_path / "a"), "a")
    fresh = _bart()
    assert fresh.load_adapter(str(tmp_path / "a"), set_active=True) == "a"
    with torch.no_grad():
        torch.testing.assert_close(fresh(**inputs).logits, expected)
    import json

    saved = json.loads((tmp_path / "a" / "adapter_config.json").read_text())
    assert saved["model_class"] == "BartAdapterModel" and saved["model_type"] == "bart"


def test_whole_model_save_pretrained_round_trip(tmp_path):
    inputs = _inputs()
    model = _bart()
    model.add_adapter("a", config="seq_bn[cross_adapter=True]")
    model.add_classification_head("a", num_labels=3)
    randomise(model.get_adapter("a"), seed=9, std=0.3)
    model.set_active_adapters("a")
    with torch.no_grad():
        expected = model(**inputs).logits
    model.save_pretrained(str(tmp_path / "m"))
    again = AutoAdapterModel.from_pretrained(str(tmp_path / "m")).eval()
    with torch.no_grad():
        torch.testing.assert_close(again(**inputs).logits, expected)


# --- refusals and hooks -----------------------------------------------------------------------------------------
def test_prompt_tuning_is_refused_as_in_the_library():
    model = _bart()
    with pytest.raises(InvalidAdapterConfig):
        model.add_adapter("p", config="prompt_tuning")
    assert not model.has_adapter("p")


def test_missing_cross_attention_layer_norm_fails_loudly():
    from transformers import AutoModel

    from adapters_client.model import AdapterModel

    base = AutoModel.from_config(tiny_config("bart"))
    del base.decoder.layers[1].encoder_attn_layer_norm
    with pytest.raises(HookTargetMissing) as caught:
        AdapterModel(base)
    assert "encoder_attn_layer_norm" in str(caught.value) and caught.value.details["architecture"] == "bart"


def test_missing_cross_attention_projection_fails_loudly():
    from transformers import AutoModel

    from adapters_client.model import AdapterModel

    base = AutoModel.from_config(tiny_config("bart"))
    del base.decoder.layers[0].encoder_attn.k_proj
    with pytest.raises(HookTargetMissing) as caught:
        AdapterModel(base)
    assert "encoder_attn.k_proj" in str(caught.value) and caught.value.details["architecture"] == "bart"


# --- T5 -----------------------------------------------------------------------------------------------------------
T5_EOS = 1  # tiny_config("t5").eos_token_id


def _t5(attn: str = "eager", seed: int = 0):
    torch.manual_seed(seed)
    return AutoAdapterModel.from_config(tiny_config("t5"), attn_implementation=attn).eval()


def _t5_inputs(batch: int = 2, length: int = 7, seed: int = 1) -> dict:
    inputs = _inputs(batch, length, seed)
    for row in range(batch):
        ids = inputs["input_ids"][row]
        ids[ids == EOS] = T5_EOS
    inputs["decoder_input_ids"][:, 0] = 0  # T5's decoder start token
    return inputs


def test_t5_row_sites_are_the_sublayers():
    model = _t5()
    engine = model.adapter_engine
    assert engine.num_layers == 4 and engine.layer_path(3) == "decoder.block.1"
    model.add_adapter("a", config="double_seq_bn[cross_adapter=True]")
    hosts = {k.split(".adapters.")[0] for k in _keys(model, "a")}
    assert hosts == {f"transformer.encoder.block.{i}.layer.{j}" for i in (0, 1) for j in (0, 1)} | {
        f"transformer.decoder.block.{i}.layer.{j}" for i in (0, 1) for j in (0, 1, 2)}
    model.add_adapter("l", config="lora[attn_matrices=['q','k','v'],intermediate_lora=True,output_lora=True]")
    decoder = {k.rsplit(".loras.", 1)[0] for k in _keys(model, "l") if k.startswith("transformer.decoder.block.0.")}
    assert decoder == {f"transformer.decoder.block.0.{p}" for p in (
        "layer.0.SelfAttention.q", "layer.0.SelfAttention.k", "layer.0.SelfAttention.v", "layer.1.EncDecAttention.q",
        "layer.1.EncDecAttention.k", "layer.1.EncDecAttention.v", "layer.2.DenseReluDense.wi",
        "layer.2.DenseReluDense.wo")}


def test_t5_makes_decoder_inputs_and_scales_its_tied_output():
    inputs = _t5_inputs()
    model = _t5()
    with torch.no_grad():
        ours = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        shifted = model.transformer._shift_right(inputs["input_ids"])
        plain = model.transformer(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                                  decoder_input_ids=shifted).last_hidden_state
    torch.testing.assert_close(ours, plain * model.config.d_model ** -0.5)
    model.add_seq2seq_lm_head("lm")
    labels = inputs["decoder_input_ids"]
    with torch.no_grad():  # with a seq2seq LM head, the labels shifted right are the decoder inputs
        from_labels = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"], labels=labels)
        given = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                      decoder_input_ids=model.transformer._shift_right(labels), labels=labels)
    torch.testing.assert_close(from_labels.logits, given.logits)
    assert from_labels.loss.isfinite()


def test_t5_sequence_heads_read_the_unscaled_output_at_the_last_eos():
    inputs = _t5_inputs()
    model = _t5()
    model.add_classification_head("c", num_labels=3)
    with torch.no_grad():
        logits = model(**inputs).logits
        decoder_out = model.transformer(**inputs).last_hidden_state  # unscaled
    last_eos = torch.tensor([int(inputs["attention_mask"][r].sum()) - 1 for r in range(2)])
    expected = model.heads["c"](None, cls_output=decoder_out[torch.arange(2), last_eos]).logits
    torch.testing.assert_close(logits, expected)


@pytest.mark.parametrize("config", ["prompt_tuning", "seq_bn_inv", "loreft"])
def test_t5_refusals_are_typed(config):
    model = _t5()
    with pytest.raises(InvalidAdapterConfig):
        model.add_adapter("x", config=config)
    assert not model.has_adapter("x")


@pytest.mark.parametrize("attn", ["eager", "sdpa"])
@pytest.mark.parametrize("config", ["seq_bn[cross_adapter=True]", "lora", "prefix_tuning[prefix_length=3]"])
def test_t5_step_by_step_decoding_with_a_cache_equals_the_full_forward(attn, config):
    from adapters_client.errors import AdaptersClientError

    inputs = _t5_inputs()
    try:
        model = _t5(attn)
    except (ValueError, AdaptersClientError):  # transformers 4.57 has no sdpa for T5: refused there, typed
        assert attn == "sdpa"
        import transformers

        assert int(transformers.__version__.split(".")[0]) < 5
        return
    model.add_adapter("a", config=config)
    model.add_seq2seq_lm_head("a")
    randomise(model.get_adapter("a"), seed=7, std=0.3)
    model.set_active_adapters("a")
    full, stepped = _full_and_stepped_logits(model, inputs)
    torch.testing.assert_close(stepped, full, atol=1e-5, rtol=1e-4)


def test_t5_save_and_load_round_trip(tmp_path):
    inputs = _t5_inputs()
    model = _t5()
    model.add_adapter("a", config="double_seq_bn[cross_adapter=True]")
    model.add_adapter("l", config="ia3")
    model.add_classification_head("a", num_labels=2)
    randomise(model.get_adapter("a") + model.get_adapter("l"), seed=8, std=0.3)
    from adapters_client.composition import Stack

    model.set_active_adapters(Stack("l", "a"))
    model.active_head = "a"
    with torch.no_grad():
        expected = model(**inputs).logits
    for name in ("a", "l"):
        model.save_adapter(str(tmp_path / name), name)
    fresh = _t5()
    fresh.load_adapter(str(tmp_path / "a"))
    fresh.load_adapter(str(tmp_path / "l"))
    fresh.set_active_adapters(Stack("l", "a"))
    fresh.active_head = "a"
    with torch.no_grad():
        torch.testing.assert_close(fresh(**inputs).logits, expected)


# --- gated prefix tuning (use_gating=True) ------------------------------------------------------------------------
@pytest.mark.parametrize("arch", ["bart", "t5"])
def test_gated_prefix_has_a_gate_per_attention_and_open_gates_give_the_plain_prefix(arch, tmp_path):
    """One gate on each attention module with a prefix (encoder and decoder self-attention, cross-attention; the
    library's keys); gates opened wide (sigmoid(30) = 1) give the ungated prefix's output, half-open gates another;
    save/load keeps them."""
    model, inputs = (_bart(), _inputs()) if arch == "bart" else (_t5(), _t5_inputs())
    gated = "prefix_tuning[prefix_length=3,use_gating=True,shared_gating=False]"
    model.add_adapter("g", config=gated)
    model.add_adapter("p", config="prefix_tuning[prefix_length=3]")
    model.add_seq2seq_lm_head("g")
    randomise(model.get_adapter("p"), seed=4, std=0.3)
    state = model.state_dict()
    with torch.no_grad():
        for key, value in state.items():
            if ".prefix_tunings.p." in key:
                state[key.replace(".p.", ".g.")].copy_(value)
    gates = {k.rsplit(".prefix_tuning.", 1)[0] for k in state if ".prefix_gates.g." in k}
    if arch == "bart":
        assert gates == {f"model.encoder.layers.{i}.self_attn" for i in (0, 1)} | {
            f"model.decoder.layers.{i}.{a}" for i in (0, 1) for a in ("self_attn", "encoder_attn")}
    else:
        assert gates == {f"transformer.encoder.block.{i}.layer.0.SelfAttention" for i in (0, 1)} | {
            f"transformer.decoder.block.{i}.layer.{j}.{a}" for i in (0, 1)
            for j, a in ((0, "SelfAttention"), (1, "EncDecAttention"))}
    with torch.no_grad():
        for key, value in state.items():
            if ".prefix_gates.g." in key:
                value.zero_() if key.endswith("weight") else value.fill_(30.0)
        model.set_active_adapters("p")
        plain = model(**inputs, head="g").logits
        model.set_active_adapters("g")
        torch.testing.assert_close(model(**inputs).logits, plain, atol=1e-5, rtol=1e-5)
        for key, value in state.items():
            if ".prefix_gates.g." in key and key.endswith("bias"):
                value.zero_()
        half = model(**inputs).logits
        assert (half - plain).abs().max() > 1e-4
    model.save_adapter(str(tmp_path / "g"), "g")
    fresh = _bart() if arch == "bart" else _t5()
    fresh.load_adapter(str(tmp_path / "g"), set_active=True)
    with torch.no_grad():
        torch.testing.assert_close(fresh(**inputs).logits, half)
    model.delete_adapter("g")
    assert not any(".prefix_gates.g." in k for k in model.state_dict())
