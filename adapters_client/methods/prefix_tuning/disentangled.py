"""Prefix route for DeBERTa-v2's disentangled self-attention (no cache argument, relative-position bias).

What the adapters library computes there: the prefix keys/values are put in front of the projected keys and
values, the content-to-content scores see them, the relative-position bias (c2p / p2c) is computed from the
sequence's own keys only and is zero on the prefix columns, and the prefix columns are visible to every
query row of the (keep-)mask.

How it reaches HF's attention without copying its forward:
- a pre-hook on the attention module extends the mask and marks the call as carrying a prefix;
- forward hooks on the key/value projections put the prefix rows in front of their outputs (after LoRA /
  IA3 on them: per-layer methods attach when the engine wraps the model, before this route exists);
- the module's ``disentangled_attention_bias`` is wrapped on the instance: it gets the keys without the
  prefix and its result is padded with zeros for the prefix columns;
- a forward hook on the attention module ends the call.
"""

from __future__ import annotations

import functools
import inspect
from typing import NamedTuple

import torch

from ...architectures import get_path
from ...context import ForwardContext
from ...errors import InvalidAdapterConfig
from ...hooks import note_expected, note_ran, pick_parameter, target_missing

_PENDING = "prefix_disentangled_pending"
BIAS_METHOD = "disentangled_attention_bias"


class _Pending(NamedTuple):
    keys: torch.Tensor  # (batch, prefix, heads * head_dim): the layout the projections output
    values: torch.Tensor
    length: int
    extended: set  # "k" / "v" once that projection's output got the prefix (the bias re-uses the projections
                   # on the relative embeddings when share_att_key is set: those calls stay untouched)


class DisentangledRoute:
    """Hooks on one layer's disentangled attention module, its key/value projections and its bias method."""

    def __init__(self, owner, layer_idx: int, layer, spec):
        self.owner, self.layer_idx = owner, layer_idx
        arch, prefix = spec.model_type, f"{spec.layers}.{layer_idx}"
        self.path = f"{prefix}.{spec.self_attention}"
        attention = get_path(layer, spec.self_attention, arch)
        self.params = list(inspect.signature(attention.forward).parameters)
        self.mask_name = pick_parameter(attention, ("attention_mask", "mask"), arch, self.path, "the attention mask")
        original = getattr(attention, BIAS_METHOD, None)
        if not callable(original):
            raise target_missing(arch, f"{self.path}.{BIAS_METHOD}",
                                 f"{type(attention).__name__} has no method {BIAS_METHOD!r}")
        bias_params = list(inspect.signature(original).parameters)
        if "key_layer" not in bias_params:
            raise target_missing(arch, f"{self.path}.{BIAS_METHOD}",
                                 f"{BIAS_METHOD} takes no 'key_layer' argument (has {bias_params})")
        self.bias_signature = inspect.signature(original)
        self.relative = bool(getattr(attention, "relative_attention", False))
        self.projection_paths = {which: f"{prefix}.{spec.lora_attn[which]}" for which in ("k", "v")}
        attention.register_forward_pre_hook(self._before_attention, with_kwargs=True)
        attention.register_forward_hook(self._after_attention, always_call=True)
        for which in ("k", "v"):
            projection = get_path(layer, spec.lora_attn[which], arch)
            projection.register_forward_hook(functools.partial(self._after_projection, which))
        setattr(attention, BIAS_METHOD, functools.wraps(original)(functools.partial(self._bias, original)))

    def _pending(self):
        forward = ForwardContext.current()
        return forward.extras.get(_PENDING, {}).get(self.layer_idx) if forward is not None else None

    # --- hooks ---
    def _before_attention(self, module, args, kwargs):
        forward = ForwardContext.current()
        hidden = args[0] if args else kwargs.get(self.params[0])
        prefix = self.owner.layer_prefix(self.layer_idx, hidden=hidden) if forward is not None else None
        if prefix is None:
            return None
        keys, values = prefix
        args, kwargs = list(args), dict(kwargs)
        index = self.params.index(self.mask_name)
        if self.mask_name in kwargs or index >= len(args):
            kwargs[self.mask_name] = _extend_keep_mask(kwargs.get(self.mask_name), keys.shape[2])
        else:
            args[index] = _extend_keep_mask(args[index], keys.shape[2])
        note_ran(("prefix", self.layer_idx))
        for which, path in self.projection_paths.items():
            note_expected((f"prefix-{which}", self.layer_idx), path)
        if self.relative:
            note_expected(("prefix-bias", self.layer_idx), f"{self.path}.{BIAS_METHOD}")
        forward.extras.setdefault(_PENDING, {})[self.layer_idx] = _Pending(
            _as_rows(keys, hidden), _as_rows(values, hidden), keys.shape[2], set())
        return tuple(args), kwargs

    def _after_projection(self, which: str, module, args, output):
        pending = self._pending()
        if pending is None or which in pending.extended:
            return None
        pending.extended.add(which)
        rows = pending.keys if which == "k" else pending.values
        note_ran((f"prefix-{which}", self.layer_idx))
        return torch.cat([rows.to(output.dtype), output], dim=1)

    def _bias(self, original, *args, **kwargs):
        pending = self._pending()
        if pending is None:
            return original(*args, **kwargs)
        pending.extended.update(("k", "v"))  # projections called from here work on the relative embeddings
        bound = self.bias_signature.bind(*args, **kwargs)
        bound.arguments["key_layer"] = bound.arguments["key_layer"][:, pending.length:]
        bias = original(*bound.args, **bound.kwargs)
        note_ran(("prefix-bias", self.layer_idx))
        if not isinstance(bias, torch.Tensor):  # no c2p / p2c terms: nothing to pad
            return bias
        return torch.nn.functional.pad(bias, (pending.length, 0))

    def _after_attention(self, module, args, output):
        forward = ForwardContext.current()
        if forward is not None:
            forward.extras.get(_PENDING, {}).pop(self.layer_idx, None)
        return None


def _as_rows(states: torch.Tensor, reference: torch.Tensor) -> torch.Tensor:
    """(batch, heads, prefix, head_dim) -> (batch', prefix, heads * head_dim) matching ``reference``'s batch."""
    if states.shape[0] != reference.shape[0]:
        states = states.repeat(reference.shape[0] // states.shape[0], 1, 1, 1)
    batch, heads, length, head_dim = states.shape
    return states.transpose(1, 2).reshape(batch, length, heads * head_dim).to(reference.dtype)


def _extend_keep_mask(mask, length: int):
    """``length`` visible key columns in front of a keep-mask (1 / True = attend), for every query row."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor) or mask.dim() < 2:
        raise InvalidAdapterConfig(f"prefix tuning cannot extend an attention mask of type {type(mask).__name__}",
                                   field="attn_implementation")
    shape = list(mask.shape)
    shape[-1] = length
    visible = torch.ones(shape, dtype=mask.dtype, device=mask.device)
    return torch.cat([visible, mask], dim=-1)
