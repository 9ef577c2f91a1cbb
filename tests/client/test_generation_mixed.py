"""``generate(adapter_names=[...])``: a mixed-adapter batch, one adapter (or None) per input row.

Each row must decode exactly as that row generated alone with its adapter active (its own LM head; a None row: no
adapter, the active head), under greedy decoding and beam search (3 beams, 2 returned sequences), with the KV cache,
on AdapterModel and on ``init()``-wrapped HF models. Decoder-only prompts are left-padded with mixed lengths and a
pad id inside the text; encoder inputs are right-padded. The rows alone are run without their padding. Both venvs.
"""

from __future__ import annotations

import pytest
import torch
import transformers

import adapters_client
from adapters_client import AutoAdapterModel, Parallel
from adapters_client.errors import AdapterNameNotFound, InvalidComposition
from adapters_client.heads.errors import InvalidHead
from tests.client.engine_helpers import randomise
from tests.client.test_generation import NEW, PAD, _backbone_noise, _config

ARCHS = ("gpt2", "llama", "bart", "t5")
ADAPTERS = {"s": "seq_bn", "l": "lora[r=4,alpha=8]", "i": "ia3"}
NAMES = ["s", None, "l", "i", "s"]
SCORE_TOL = dict(atol=1e-4, rtol=0)
BEAMS = dict(num_beams=3, num_return_sequences=2)


def _add_adapters(model) -> None:
    for index, (name, config) in enumerate(ADAPTERS.items()):
        model.add_adapter(name, config=config)
        randomise(model.adapter_engine.modules_of(name), seed=7 + index, std=0.3)


def _adapter_model(arch: str):
    """Adapters s, l, i with their own LM heads (untied transform layers, so the heads differ) and a head "base"
    for rows without adapter, active."""
    torch.manual_seed(0)
    model = AutoAdapterModel.from_config(_config(arch)).eval()
    _backbone_noise(model)
    _add_adapters(model)
    for name in ("base", *ADAPTERS):
        if model.config.is_encoder_decoder:
            model.add_seq2seq_lm_head(name, layers=2)
        else:
            model.add_causal_lm_head(name)
    model.set_active_adapters(None)
    model.active_head = "base"
    return model


def _wrapped(arch: str):
    torch.manual_seed(0)
    auto = transformers.AutoModelForSeq2SeqLM if arch in ("bart", "t5") else transformers.AutoModelForCausalLM
    model = auto.from_config(_config(arch)).eval()
    _backbone_noise(model)
    model = adapters_client.init(model)
    _add_adapters(model)
    return model


def _prompts(encoder_decoder: bool, rows: int = len(NAMES), length: int = 7) -> dict:
    ids = torch.randint(6, 99, (rows, length), generator=torch.Generator().manual_seed(4))
    mask = torch.ones_like(ids)
    for row, pads in enumerate((0, 3, 1, 0, 2)[:rows]):  # mixed lengths
        if not pads:
            continue
        if encoder_decoder:
            ids[row, -pads:], mask[row, -pads:] = PAD, 0
        else:
            ids[row, :pads], mask[row, :pads] = PAD, 0  # left padding
    ids[3, 2] = PAD  # a pad id inside the text, attended
    return {"input_ids": ids, "attention_mask": mask}


def _generate(model, inputs, **options):
    options = {"max_new_tokens": NEW, "do_sample": False, "num_beams": 1, "pad_token_id": PAD, "eos_token_id": None,
               "return_dict_in_generate": True, "output_scores": True, **options}
    return model.generate(**inputs, **options)


def _row_alone(model, inputs: dict, row: int, name, **options):
    """Row ``row`` generated on its own (its padding removed) after ``set_active_adapters(name)``."""
    keep = inputs["attention_mask"][row].bool()
    alone = {key: value[row:row + 1, keep] for key, value in inputs.items()}
    model.set_active_adapters(name)
    if name is None and hasattr(model, "heads"):
        model.active_head = "base"
    try:
        return _generate(model, alone, **options)
    finally:
        model.set_active_adapters(None)
        if hasattr(model, "heads"):
            model.active_head = "base"


def _assert_rows_equal_alone(model, inputs: dict, names: list, **options) -> None:
    per_row = options.get("num_return_sequences", 1)
    mixed = _generate(model, inputs, adapter_names=names, **options)
    assert mixed.sequences.shape[0] == len(names) * per_row
    changed = 0
    for row, name in enumerate(names):
        alone = _row_alone(model, inputs, row, name, **options)
        rows = slice(row * per_row, (row + 1) * per_row)
        assert torch.equal(mixed.sequences[rows, -NEW:], alone.sequences[:, -NEW:]), (row, name)
        if per_row > 1:
            torch.testing.assert_close(mixed.sequences_scores[rows], alone.sequences_scores, **SCORE_TOL)
        else:
            for step, (got, expected) in enumerate(zip(mixed.scores, alone.scores)):
                torch.testing.assert_close(got[rows], expected, **SCORE_TOL, msg=lambda m: f"row {row} step {step}")
        if name is not None:  # the row's adapter changes what it generates (so the test can fail)
            plain = _row_alone(model, inputs, row, None, **options)
            changed += not torch.equal(plain.sequences[:, -NEW:], alone.sequences[:, -NEW:])
    assert changed >= 3, changed


@pytest.mark.parametrize("arch", ARCHS)
def test_greedy_rows_equal_each_row_alone(arch):
    model = _adapter_model(arch)
    _assert_rows_equal_alone(model, _prompts(model.config.is_encoder_decoder), NAMES)


@pytest.mark.parametrize("arch", ARCHS)
def test_beam_search_rows_equal_each_row_alone(arch):
    """Beams and returned sequences keep their input row's adapter (transformers expands the rows with
    repeat_interleave and reorders beams within their row's block)."""
    model = _adapter_model(arch)
    _assert_rows_equal_alone(model, _prompts(model.config.is_encoder_decoder), NAMES, **BEAMS)


@pytest.mark.parametrize("arch", ARCHS)
def test_init_wrapped_models_rows_equal_each_row_alone(arch):
    """GPT2LMHeadModel, LlamaForCausalLM, BartForConditionalGeneration, T5ForConditionalGeneration: the model's own
    LM head serves every row."""
    model = _wrapped(arch)
    inputs = _prompts(model.config.is_encoder_decoder)
    _assert_rows_equal_alone(model, inputs, NAMES)
    _assert_rows_equal_alone(model, inputs, ["l", "i", None, "s", "l"], **BEAMS)


@pytest.mark.parametrize("arch", ("llama", "t5"))
def test_sampled_sequences_keep_their_rows_adapter(arch):
    """Sampling with ``num_return_sequences=3`` expands each row too; with ``top_k=1`` a sample is the greedy
    sequence, so every returned sequence must be its row's greedy mixed result."""
    model = _adapter_model(arch)
    inputs = _prompts(model.config.is_encoder_decoder)
    greedy = _generate(model, inputs, adapter_names=NAMES).sequences
    torch.manual_seed(0)
    sampled = _generate(model, inputs, adapter_names=NAMES, do_sample=True, top_k=1, num_return_sequences=3)
    assert torch.equal(sampled.sequences, greedy.repeat_interleave(3, dim=0))
    assert len({tuple(row) for row in greedy[:, -NEW:].tolist()}) == len(NAMES)  # the rows differ


def test_each_row_uses_its_adapters_head():
    """Same adapter weights, other heads: a row whose adapter has a head decodes with that head (not the active
    one), as that row alone after ``set_active_adapters(name)``."""
    model = _adapter_model("gpt2")
    inputs = _prompts(False)
    with_heads = _generate(model, inputs, adapter_names=NAMES).sequences
    model.delete_head("l")  # row 2 now falls back to the active head "base"
    without = _generate(model, inputs, adapter_names=NAMES).sequences
    assert not torch.equal(with_heads[2], without[2])
    assert torch.equal(torch.cat([with_heads[:2], with_heads[3:]]), torch.cat([without[:2], without[3:]]))
    assert torch.equal(without[2, -NEW:], _row_alone(model, inputs, 2, "l").sequences[0, -NEW:])


@pytest.mark.parametrize("arch", ("gpt2", "bart"))
def test_the_cache_is_used_and_the_encoder_runs_once_per_input_row(arch):
    model = _adapter_model(arch)
    inputs = _prompts(model.config.is_encoder_decoder)
    encoder_batches, steps = [], []
    decoder_key = "decoder_input_ids" if model.config.is_encoder_decoder else "input_ids"
    hooks = [model.base_model.register_forward_pre_hook(
        lambda module, args, kwargs: steps.append(tuple(kwargs[decoder_key].shape)), with_kwargs=True)]
    if model.config.is_encoder_decoder:
        hooks.append(model.base_model.get_encoder().register_forward_pre_hook(
            lambda module, args, kwargs: encoder_batches.append(kwargs["input_ids"].shape[0]), with_kwargs=True))
    try:
        _generate(model, inputs, adapter_names=NAMES, **BEAMS)
    finally:
        for hook in hooks:
            hook.remove()
    rows, beams = len(NAMES), BEAMS["num_beams"]
    if model.config.is_encoder_decoder:
        assert encoder_batches == [rows]  # before the expansion for the beams
        assert steps == [(rows, 1)] + [(rows * beams, 1)] * NEW  # the encoder run, then one position per step
    else:
        assert steps == [(rows * beams, inputs["input_ids"].shape[1])] + [(rows * beams, 1)] * (NEW - 1)


def test_gated_rows_decode_without_the_cache_as_each_row_alone():
    model = _adapter_model("gpt2")
    model.add_adapter("g", config="seq_bn[use_gating=True]")
    randomise(model.adapter_engine.modules_of("g"), seed=3, std=0.3)
    _assert_rows_equal_alone(model, _prompts(False), ["g", None, "l", "g", "s"])


def test_inputs_embeds():
    model = _adapter_model("llama")
    inputs = _prompts(False)
    embeds = model.get_input_embeddings()(inputs["input_ids"])
    by_embeds = model.generate(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], adapter_names=NAMES,
                               max_new_tokens=NEW, do_sample=False, pad_token_id=PAD, eos_token_id=None)
    by_ids = _generate(model, inputs, adapter_names=NAMES).sequences
    assert torch.equal(by_embeds[:, -NEW:], by_ids[:, -NEW:])


def _refused(error_type, match: str, field: str, model, inputs, **options):
    with pytest.raises(error_type, match=match) as error:
        _generate(model, inputs, **options)
    assert error.value.details["field"] == field, error.value.details
    return error.value


def test_refusals():
    model = _adapter_model("gpt2")
    inputs = _prompts(False)
    _refused(InvalidComposition, "4 entries but the batch has 5 rows", "adapter_names", model, inputs,
             adapter_names=NAMES[:4])
    _refused(AdapterNameNotFound, "'x'", "adapter_names", model, inputs, adapter_names=["s", None, "x", "l", "i"])
    _refused(InvalidComposition, "must be a list", "adapter_names", model, inputs, adapter_names="s")
    _refused(InvalidComposition, "input_ids or inputs_embeds", "adapter_names", model, {}, adapter_names=["s"])
    _refused(InvalidComposition, "assistant_model", "assistant_model", model, inputs, adapter_names=NAMES,
             assistant_model=model)
    _refused(InvalidComposition, "task_ids", "task_ids", model, inputs, adapter_names=NAMES, task_ids=[0] * 5)
    model.add_adapter("p", config="prefix_tuning[prefix_length=2]")
    _refused(InvalidComposition, "'p'.*sequence", "adapter_names", model, inputs,
             adapter_names=["p", None, "s", "s", "s"])
    model.add_adapter("m", config="lora[r=2]")
    model.merge_adapter("m")
    _refused(InvalidComposition, "merged", "adapter_names", model, inputs, adapter_names=NAMES)
    model.reset_adapter()
    model.train()
    _refused(InvalidComposition, "inference only", "adapter_names", model, inputs, adapter_names=NAMES)
    model.eval()
    model.add_classification_head("cls", num_labels=2)  # the active head now: rows without their own head use it
    error = _refused(InvalidHead, "'cls' is a 'classification' head", "head", model, inputs, adapter_names=NAMES)
    assert error.details["head"] == "cls"
    model.active_head = ["s", "l"]  # no single active head for the None row
    _refused(InvalidHead, r"rows \[1\]", "head", model, inputs, adapter_names=NAMES)
    assert _generate(model, inputs, adapter_names=NAMES, head="l").sequences.shape[0] == 5  # head= serves every row


def test_the_active_setup_does_not_apply():
    """adapter_names replaces the active setup (here Parallel, which would replicate the batch, and a single adapter,
    which must not reach the None rows) for the call, as in a mixed-batch forward."""
    model = _adapter_model("bart")
    inputs = _prompts(True)
    names = ["s", "l", "i", "l", "s"]
    expected = _generate(model, inputs, adapter_names=names).sequences
    model.set_active_adapters(Parallel("s", "l"))
    assert torch.equal(_generate(model, inputs, adapter_names=names).sequences, expected)
    model.set_active_adapters(None)
    model.active_head = "base"
    expected = _generate(model, inputs, adapter_names=NAMES).sequences
    model.set_active_adapters("l")
    model.active_head = "base"
    assert torch.equal(_generate(model, inputs, adapter_names=NAMES).sequences, expected)
    assert not torch.equal(_generate(model, inputs).sequences[1], expected[1])  # "l" would change the None row


def test_refusals_of_encoder_decoders_and_wrapped_models():
    model = _adapter_model("bart")
    inputs = _prompts(True)
    encoded = model.get_encoder()(**inputs)
    _refused(InvalidComposition, "encoder_outputs", "encoder_outputs", model, inputs, adapter_names=NAMES,
             encoder_outputs=encoded)
    wrapped = _wrapped("t5")
    _refused(AdapterNameNotFound, "'y'", "adapter_names", wrapped, inputs, adapter_names=["s", "y", None, None, None])
    _refused(InvalidComposition, "1 entries but the batch has 5 rows", "adapter_names", wrapped, inputs,
             adapter_names=["s"])
    wrapped.add_adapter("p", config="prefix_tuning[prefix_length=2]")
    _refused(InvalidComposition, "'p'.*sequence", "adapter_names", wrapped, inputs, adapter_names=["p"] * 5)
    wrapped.train()
    _refused(InvalidComposition, "inference only", "adapter_names", wrapped, inputs, adapter_names=NAMES)
