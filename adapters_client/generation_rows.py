"""Mixed-adapter batches in ``generate()``: ``adapter_names=[...]``, one adapter name (or None) per input row.

transformers expands every batched tensor model keyword for beams and returned sequences (``repeat_interleave``,
the order of its own inputs) and never reorders model keywords during beam search (beams are reordered within
their input's block of rows, through the cache only). So the names travel through ``generate`` as a per-row index
tensor under the ``adapter_names`` keyword: the encoder run (encoder-decoders) gets it before the expansion, once
per input row; every decoding step gets it expanded like the attention mask; the forward turns it back into one
name per row (``generation_plan``) and runs the mixed-batch plan of ``AdapterEngine.row_adapters``.
"""

from __future__ import annotations

import contextvars
from typing import Optional

import torch

from .context import RowAdapters
from .errors import InvalidComposition

# (the model generating with adapter_names, its table: index -> adapter name or None, {id(tensor): (tensor, plan)})
_TABLE: contextvars.ContextVar = contextvars.ContextVar("adapters_client_generation_rows", default=None)


def prepare_row_generation(model, inputs, kwargs: dict) -> tuple:
    """``kwargs`` of a ``generate(adapter_names=[...])`` call checked (the mixed-batch forward's refusals plus the
    generation-specific ones) and with ``adapter_names`` as a per-row index tensor; returns (names, kwargs, table)."""
    names = kwargs["adapter_names"]
    for key, why in (("encoder_outputs", "the encoder must run with each row's adapter; pass the inputs instead"),
                     ("assistant_model", "the assistant model does not hold these adapters")):
        if kwargs.get(key) is not None:
            raise InvalidComposition(f"generate() with adapter_names does not take {key} ({why})", field=key)
    batched = next((value for value in (inputs, kwargs.get("input_ids"), kwargs.get("inputs_embeds"))
                    if isinstance(value, torch.Tensor)), None)
    if batched is None:
        raise InvalidComposition("generate() with adapter_names needs input_ids or inputs_embeds (one adapter name "
                                 "per row)", field="adapter_names")
    plan = model.adapter_engine.row_adapters(names, batched.shape[0], model.training)  # the forward's refusals
    table = list(dict.fromkeys(plan.names))
    index = torch.tensor([table.index(name) for name in plan.names], dtype=torch.long, device=batched.device)
    return plan.names, dict(kwargs, adapter_names=index), tuple(table)


class RowGeneration:
    """The context of one ``generate(adapter_names=...)`` call: forwards of ``model`` inside it read their
    ``adapter_names`` index tensor against ``table``."""

    def __init__(self, model, table: tuple):
        self.value = (model, table, {})
        self._token = None

    def __enter__(self) -> "RowGeneration":
        self._token = _TABLE.set(self.value)
        return self

    def __exit__(self, *exc) -> None:
        _TABLE.reset(self._token)


def generation_plan(model, adapter_names) -> Optional[RowAdapters]:
    """Inside ``model.generate(adapter_names=...)``: the per-row plan of a forward whose ``adapter_names`` is the
    (expanded) index tensor; None for anything else (a list is the forward's own mixed batch)."""
    current = _TABLE.get()
    if not isinstance(adapter_names, torch.Tensor) or current is None or current[0] is not model:
        return None
    _, table, memo = current
    hit = memo.get(id(adapter_names))
    if hit is not None and hit[0] is adapter_names:
        return hit[1]
    names = [table[i] for i in adapter_names.reshape(-1).tolist()]
    plan = model.adapter_engine.row_adapters(names, len(names), model.training)
    memo[id(adapter_names)] = (adapter_names, plan)
    return plan
