"""Mixed-adapter batches on models wrapped with ``adapters_client.init()``: their own forward (a Hugging
Face ``*For...`` class with its own head) takes ``adapter_names=[...]`` too, each row equal to that row run
alone with its adapter active, the model's head applied to every row."""

from __future__ import annotations

import inspect

import pytest
import torch
from transformers import AutoModel, AutoModelForCausalLM, AutoModelForSequenceClassification

import adapters_client
from adapters_client.errors import AdapterNameNotFound, InvalidComposition

from .engine_helpers import randomise, tiny_config

TOL = dict(atol=1e-5, rtol=0)
ARCHS = ("bert", "distilbert", "gpt2", "llama")
CONFIGS = {"s": "seq_bn", "l": "lora[output_lora=True]", "p": "par_bn"}


def _wrapped(arch: str, auto=AutoModelForSequenceClassification, seed: int = 0):
    torch.manual_seed(seed)
    config = tiny_config(arch)
    config.pad_token_id = 0
    if auto is AutoModelForSequenceClassification:
        config.num_labels = 3
    model = adapters_client.init(auto.from_config(config).eval())
    for n, name in enumerate(CONFIGS):
        model.add_adapter(name, config=CONFIGS[name])
        randomise(model.get_adapter(name), seed=20 + n)
    return model


def _inputs(batch: int, length: int = 8) -> dict:
    ids = torch.randint(3, 99, (batch, length), generator=torch.Generator().manual_seed(3))
    mask = torch.ones_like(ids)
    for row in range(1, batch, 2):
        mask[row, length - 1 - row % (length - 2):] = 0
    return {"input_ids": torch.where(mask.bool(), ids, torch.zeros_like(ids)), "attention_mask": mask}


def _alone(model, inputs: dict, names: list) -> list:
    rows = []
    with torch.no_grad():
        for row, name in enumerate(names):
            model.set_active_adapters(name)
            rows.append(model(**{k: v[row:row + 1] for k, v in inputs.items()})[0])
    model.set_active_adapters(None)
    return rows


@pytest.mark.parametrize("arch", ARCHS)
def test_rows_of_an_init_wrapped_classifier_equal_each_row_alone(arch):
    model = _wrapped(arch)
    names = ["s", None, "l", "p", "s", None, "l"]
    inputs = _inputs(len(names))
    with torch.no_grad():
        mixed = model(**inputs, adapter_names=names).logits
        plain = model(**inputs).logits  # no adapter active
    assert mixed.shape == (len(names), 3)
    for row, (name, expected) in enumerate(zip(names, _alone(model, inputs, names))):
        torch.testing.assert_close(mixed[row:row + 1], expected, **TOL, msg=lambda m: f"row {row} ({name}): {m}")
        moved = (mixed[row] - plain[row]).abs().max().item()
        assert (moved <= 1e-5) if name is None else (moved > 1e-4), (row, name, moved)


def test_a_plain_base_model_and_inputs_embeds():
    model = _wrapped("bert", auto=AutoModel)
    names = ["l", "s", None]
    inputs = _inputs(3)
    with torch.no_grad():
        embeds = model.embeddings.word_embeddings(inputs["input_ids"])
        by_embeds = model(inputs_embeds=embeds, attention_mask=inputs["attention_mask"], adapter_names=names)
        by_ids = model(**inputs, adapter_names=names)
    torch.testing.assert_close(by_embeds.last_hidden_state, by_ids.last_hidden_state, **TOL)
    for row, expected in enumerate(_alone(model, inputs, names)):
        torch.testing.assert_close(by_ids.last_hidden_state[row:row + 1], expected, **TOL)


def test_positional_input_ids_and_causal_lm_logits():
    model = _wrapped("gpt2", auto=AutoModelForCausalLM)
    names = [None, "l", "s"]
    inputs = _inputs(3)
    with torch.no_grad():
        mixed = model(inputs["input_ids"], attention_mask=inputs["attention_mask"], adapter_names=names).logits
    for row, expected in enumerate(_alone(model, inputs, names)):
        torch.testing.assert_close(mixed[row:row + 1], expected, **TOL)


def test_the_signature_keeps_the_models_own_arguments():
    """The HF Trainer keeps only dataset columns named in forward's signature; generate checks kwargs by it."""
    model = _wrapped("bert")
    original = inspect.signature(AutoModelForSequenceClassification.from_config(tiny_config("bert")).forward)
    params = inspect.signature(model.forward).parameters
    assert [name for name in params if name not in ("adapter_names", "task_ids")] == list(original.parameters)
    assert {"input_ids", "attention_mask", "labels"} <= set(params)
    for added in ("adapter_names", "task_ids"):  # task_ids: MultiTask routing (MTL-LoRA)
        assert params[added].kind is inspect.Parameter.KEYWORD_ONLY and params[added].default is None
    assert type(model).__name__ == "BertForSequenceClassification"


def test_the_rows_do_not_outlive_the_call_and_labels_still_give_a_loss():
    model = _wrapped("bert")
    inputs = _inputs(2)
    labels = torch.tensor([0, 2])
    with torch.no_grad():
        mixed = model(**inputs, labels=labels, adapter_names=["s", "l"])
        after = model(**inputs).logits
        plain = _alone(model, inputs, [None, None])
    assert mixed.loss is not None and torch.isfinite(mixed.loss)
    expected = torch.nn.functional.cross_entropy(mixed.logits, labels)
    torch.testing.assert_close(mixed.loss, expected, **TOL)
    torch.testing.assert_close(after, torch.cat(plain), **TOL)  # the next call runs without the rows


def test_refusals_are_typed():
    model = _wrapped("bert")
    inputs = _inputs(3)
    with torch.no_grad():
        with pytest.raises(InvalidComposition, match="3 rows"):
            model(**inputs, adapter_names=["s", "l"])
        with pytest.raises(AdapterNameNotFound):
            model(**inputs, adapter_names=["s", "nope", None])
        with pytest.raises(InvalidComposition, match="needs input_ids or inputs_embeds"):
            model(attention_mask=inputs["attention_mask"], adapter_names=["s", "l", None])
    model.train()
    with pytest.raises(InvalidComposition, match="inference only"):
        model(**inputs, adapter_names=["s", "l", None])


def test_init_twice_keeps_one_wrapper():
    model = _wrapped("bert")
    assert adapters_client.init(model) is model
    names = ["s", "p"]
    inputs = _inputs(2)
    with torch.no_grad():
        mixed = model(**inputs, adapter_names=names).logits
    for row, expected in enumerate(_alone(model, inputs, names)):
        torch.testing.assert_close(mixed[row:row + 1], expected, **TOL)
