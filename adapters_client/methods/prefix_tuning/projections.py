"""Prefix route for attention modules that have no cache interface (DistilBERT).

The prefix enters through the key/value projections instead of a cache: a pre-hook on the attention
module prepends ``prefix_length`` placeholder rows to the input(s) the key/value projections read, forward
hooks on those projections overwrite the placeholder rows with the prefix keys/values (after any LoRA/IA3
on them, as in the adapters library), and the attention mask is extended so the prefix is always visible.
When the queries are computed from the same input (one ``hidden_states`` argument, transformers 5), the
placeholder query rows are removed from the attention output again. HF's attention code runs unchanged.
"""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import torch

from ...architectures import get_path
from ...context import ForwardContext
from ...errors import InvalidAdapterConfig
from ...hooks import note_expected, note_ran, pick_parameter

_PENDING = "prefix_projection_pending"
_PLACEHOLDERS = "prefix_projection_placeholders"


def placeholder_rows(tensor) -> int:
    """How many placeholder rows for the prefix this route put in front of ``tensor`` (the input of a key/value
    projection, or of every projection when the queries share it); 0 for any other tensor."""
    forward = ForwardContext.current()
    if forward is None:
        return 0
    for layer in forward.extras.get(_PLACEHOLDERS, {}).values():
        found = layer.get(id(tensor))
        if found is not None and found[1] is tensor:
            return found[0]
    return 0


class _Pending(NamedTuple):
    keys: torch.Tensor  # (batch, prefix, heads * head_dim), the layout the projection outputs
    values: torch.Tensor
    length: int
    strip_queries: bool


class ProjectionRoute:
    """Hooks on one layer's attention module and its key/value projections."""

    def __init__(self, owner, layer_idx: int, layer, spec):
        self.owner, self.layer_idx = owner, layer_idx
        arch, prefix = spec.model_type, f"{spec.layers}.{layer_idx}"
        attention = get_path(layer, spec.self_attention, arch)
        self.params = list(inspect.signature(attention.forward).parameters)
        # transformers 4.x: forward(query, key, value, mask, ...); 5.x: forward(hidden_states, attention_mask, ...)
        self.separate = "key" in self.params and "value" in self.params
        self.inputs = ("key", "value") if self.separate else (self.params[0],)
        self.mask_name = pick_parameter(attention, ("mask", "attention_mask"), arch, f"{prefix}.{spec.self_attention}",
                                        "the attention mask")
        self.projection_paths = {which: f"{prefix}.{spec.lora_attn[which]}" for which in ("k", "v")}
        attention.register_forward_pre_hook(self._before_attention, with_kwargs=True)
        # first among the forward hooks: bottleneck sites and HF's output recording see the real rows only
        attention.register_forward_hook(self._after_attention, prepend=True)
        for which in ("k", "v"):
            projection = get_path(layer, spec.lora_attn[which], arch)
            projection.register_forward_hook(functools.partial(self._after_projection, which))

    # --- argument access by name (positional or keyword) ---
    def _get(self, args, kwargs, name):
        index = self.params.index(name) if name in self.params else None
        if name in kwargs or index is None or index >= len(args):
            return kwargs.get(name)
        return args[index]

    def _set(self, args: list, kwargs: dict, name, value) -> None:
        index = self.params.index(name) if name in self.params else None
        if name in kwargs or index is None or index >= len(args):
            kwargs[name] = value
        else:
            args[index] = value

    # --- hooks ---
    def _before_attention(self, module, args, kwargs):
        forward = ForwardContext.current()
        hidden = self._get(args, kwargs, self.inputs[-1])  # the library gates on the value input
        prefix = self.owner.layer_prefix(self.layer_idx, hidden=hidden) if forward is not None else None
        if prefix is None:
            return None
        keys, values = prefix
        length = keys.shape[2]
        args, kwargs = list(args), dict(kwargs)
        extended = {}
        for name in self.inputs:
            tensor = self._get(args, kwargs, name)
            if id(tensor) not in extended:
                placeholder = tensor.new_zeros(tensor.shape[0], length, *tensor.shape[2:])
                extended[id(tensor)] = torch.cat([placeholder, tensor], dim=1)
            self._set(args, kwargs, name, extended[id(tensor)])
        self._set(args, kwargs, self.mask_name,
                  extend_mask(self._get(args, kwargs, self.mask_name), length, queries=not self.separate))
        reference = next(iter(extended.values()))
        note_ran(("prefix", self.layer_idx))
        for which, path in self.projection_paths.items():
            note_expected((f"prefix-{which}", self.layer_idx), path)
        # LoRA gates average over the sequence: they must not see these placeholder rows (placeholder_rows)
        forward.extras.setdefault(_PLACEHOLDERS, {})[self.layer_idx] = {id(t): (length, t) for t in extended.values()}
        forward.extras.setdefault(_PENDING, {})[self.layer_idx] = _Pending(
            _as_rows(keys, reference), _as_rows(values, reference), length, not self.separate)
        return tuple(args), kwargs

    def _after_projection(self, which: str, module, args, output):
        forward = ForwardContext.current()
        pending = forward.extras.get(_PENDING, {}).get(self.layer_idx) if forward is not None else None
        if pending is None:
            return None
        rows = pending.keys if which == "k" else pending.values
        note_ran((f"prefix-{which}", self.layer_idx))
        return torch.cat([rows.to(output.dtype), output[:, pending.length:]], dim=1)

    def _after_attention(self, module, args, output):
        forward = ForwardContext.current()
        if forward is not None:
            forward.extras.get(_PLACEHOLDERS, {}).pop(self.layer_idx, None)
        pending = forward.extras.get(_PENDING, {}).pop(self.layer_idx, None) if forward is not None else None
        if pending is None or not pending.strip_queries:
            return None
        length = pending.length
        if isinstance(output, torch.Tensor):
            return output[:, length:]
        first, rest = output[0][:, length:], list(output[1:])
        if rest and isinstance(rest[0], torch.Tensor) and rest[0].dim() == 4:  # attention weights
            rest[0] = rest[0][:, :, length:]
        return type(output)((first, *rest)) if isinstance(output, tuple) else [first, *rest]


def _as_rows(states: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(batch, heads, prefix, head_dim) -> (batch', prefix, heads * head_dim) matching ``reference``'s batch."""
    if states.shape[0] != reference.shape[0]:
        states = states.repeat(reference.shape[0] // states.shape[0], 1, 1, 1)
    batch, heads, length, head_dim = states.shape
    return states.transpose(1, 2).reshape(batch, length, heads * head_dim).to(reference.dtype)


def extend_mask(mask, length: int, queries: bool):
    """Make ``length`` prefix keys visible; with ``queries``, also add visible rows for placeholder queries.

    2D masks are keep-masks (1/True = attend); 4D masks are boolean (True = attend) or additive (0 = attend).
    """
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dim() not in (2, 4):
        raise InvalidAdapterConfig(f"prefix tuning cannot extend an attention mask of type {type(mask).__name__} "
                                   f"(use the eager or sdpa attention implementation)", field="attn_implementation")
    visible = True if mask.dtype == torch.bool else (1 if mask.dim() == 2 else 0)
    shape = list(mask.shape)
    shape[-1] = length
    mask = torch.cat([torch.full(shape, visible, dtype=mask.dtype, device=mask.device), mask], dim=-1)
    if queries and mask.dim() == 4 and mask.shape[2] > 1:
        shape = list(mask.shape)
        shape[2] = length
        mask = torch.cat([torch.full(shape, visible, dtype=mask.dtype, device=mask.device), mask], dim=2)
    return mask
