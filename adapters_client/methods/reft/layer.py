"""The ReFT site of one transformer layer: a ``reft_layer`` module holding the ``refts`` dict, and a forward hook
on the layer that intervenes on its output (the adapters library's ``init_reft`` places it there too).

Which adapter runs: the adapters library applies the **first** adapter of the active setup at every ReFT
layer, whatever the composition block. Here a plain adapter and a Stack whose first adapter is a ReFT adapter
run it, as there; a setup in which the library would silently drop a ReFT adapter (a Stack with another
ReFT adapter, or one not first) and Parallel, BatchSplit and Average blocks holding a ReFT adapter (the
library fails on them) are refused with ``InvalidComposition``. A mixed-adapter batch (``adapter_names``)
runs each row's own adapter at that row's own positions.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from ...composition import Stack
from ...context import ForwardContext, RowAdapters, put_rows, take_rows
from ...errors import InvalidAdapterConfig, InvalidComposition
from ...hooks import note_ran, target_missing
from ..composable import ComposableLayer
from ..registry import parts_key
from .modules import ReftModule

MASK_KEY = "reft_attention_mask"  # ForwardContext extras: the attention mask the base model was called with
CACHED_KEY = "reft_cached"  # ... True when a filled key/value cache was passed (step-by-step decoding)
OWNER_KEY = "reft_owner"  # ... the ReftModelParts of the model this forward runs (contexts are shared by models)
_POSITIONS_KEY = "reft_positions"  # ... memo: (rows, length, prefix, suffix, device) -> index tensors


class ReftState(NamedTuple):
    """What ReFT carries through a composition: the layer output (batch, seq, width); each adapter computes its
    own positions."""

    hidden: torch.Tensor


class ReftContainer(nn.Module):
    """``<layer>.reft_layer``: holds ``refts`` (adapter name -> ReftModule) under the library's key names."""

    def __init__(self):
        super().__init__()
        self.refts = nn.ModuleDict()

    def forward(self, *args, **kwargs):  # pragma: no cover - a holder; the layer's hook does the work
        raise RuntimeError("reft_layer is not called; the layer's forward hook applies the interventions")


class ReftLayer(ComposableLayer):
    """The ReFT interventions after one layer."""

    location_key = "output_reft"

    def __init__(self, engine, layer: nn.Module, layer_idx: int, path: str):
        self.engine = engine
        self.layer_idx = layer_idx
        self.path = path  # from the base model, for error messages
        if hasattr(layer, "reft_layer"):
            raise target_missing(engine.spec.model_type, path, "the layer already has a 'reft_layer' attribute")
        layer.add_module("reft_layer", ReftContainer())
        self.adapters: nn.ModuleDict = layer.reft_layer.refts
        layer.register_forward_hook(self._hook)

    # --- adapters ---
    def add(self, name: str, config) -> bool:
        spec = self.engine.spec
        if getattr(spec, "decoder_layers", None) is not None:
            raise InvalidAdapterConfig(
                f"ReFT on the encoder-decoder architecture {spec.model_type!r} is not supported: adapters 1.3.0 "
                f"places decoder interventions by the encoder's attention mask (one set of positions for both "
                f"sequences), which has no well-defined meaning for decoder rows", field="architecture")
        layers = config.intervention_layers
        count = self.engine.num_layers
        if layers is not None and any(i >= count for i in layers):
            raise InvalidAdapterConfig(f"layers names layer {max(layers)} but the model has {count} layers "
                                       f"(0..{count - 1})", field="layers")
        ref = self.engine._reference_param()
        if config.dtype is not None and getattr(torch, config.dtype) != ref.dtype:
            raise InvalidAdapterConfig(
                f"dtype {config.dtype!r} differs from the model's {str(ref.dtype).replace('torch.', '')}: the "
                f"interventions would be fed the model's hidden states (the adapters library fails on it in its "
                f"forward); leave dtype unset or load the model in that dtype", field="dtype")
        if config.orthogonality and ref.dtype in (torch.float16, torch.bfloat16):
            raise InvalidAdapterConfig(
                "orthogonality (LoReFT) needs a float32 or float64 model: torch's orthogonal parametrization "
                "has no half precision (the adapters library fails on it too)", field="orthogonality")
        if layers is not None and self.layer_idx not in layers:
            return False
        module = ReftModule(self.engine.hidden_size, config)
        module.to(device=ref.device)
        self.adapters[name] = module
        return True

    def remove(self, name: str) -> None:
        del self.adapters[name]

    # --- forward ---
    def _hook(self, module, args, output):
        if not len(self.adapters):
            return None
        rows = RowAdapters.current()
        if rows is not None:
            groups = rows.adapter_groups(_hidden_of(output, self).device, self.adapters)
            if not groups:
                return None
            return _replace_hidden(output, self._rows(_hidden_of(output, self), rows, groups))
        setup = self.engine.setup_for(self)
        if setup is None:
            return None
        hidden = _hidden_of(output, self)
        state = self.compose(setup, ReftState(hidden), 0)
        if state.hidden is hidden:
            return None
        return _replace_hidden(output, state.hidden)

    def _rows(self, hidden: torch.Tensor, rows: RowAdapters, groups: list) -> torch.Tensor:
        """A mixed-adapter batch: each group of rows gets its adapter at its own rows' positions."""
        note_ran(id(self))
        result = hidden.clone()
        for group in groups:
            reft = self.adapters[group.name]
            prefix, suffix = self._positions(hidden, reft)
            part = reft(take_rows(hidden, group), take_rows(prefix, group), take_rows(suffix, group))
            put_rows(result, group, part)
        return result

    def _positions(self, hidden: torch.Tensor, reft: ReftModule) -> tuple:
        """(prefix, suffix) positions of every row for ``reft``: the first ``prefix_positions`` and last
        ``suffix_positions`` attended tokens (attention mask: first 1, number of 1s; without a mask every
        position counts), at most the sequence length; memoised per forward."""
        forward = ForwardContext.current()
        parts = self.engine.extensions.get(parts_key("reft"))
        if parts is None:  # pragma: no cover - created with the sites
            raise InvalidComposition("ReFT sites without their model part (ReftModelParts)")
        if forward is not None and forward.extras.get(OWNER_KEY) is parts:
            extras = forward.extras
        else:  # a checkpointed layer recomputed in backward, outside its forward: this model's last forward's mask
            forward = None  # (a context current now, if any, belongs to another call)
            extras = dict(parts.last_forward)
        if extras.get(CACHED_KEY):
            raise InvalidComposition(
                "ReFT with a filled key/value cache (step-by-step decoding) is not supported: its positions are "
                "counted over the whole sequence, which a decoding step does not hold (the adapters library "
                "intervenes at the wrong positions there); run the full sequence with use_cache=False")
        batch, length = hidden.shape[0], hidden.shape[1]
        mask = extras.get(MASK_KEY)
        key = (batch, length, reft.prefix_positions, reft.suffix_positions, hidden.device)
        memo = extras.setdefault(_POSITIONS_KEY, {}) if forward is not None else {}
        found = memo.get(key)
        if found is not None:
            return found
        if mask is None:
            first = torch.zeros(batch, dtype=torch.long, device=hidden.device)
            end = torch.full((batch,), length, dtype=torch.long, device=hidden.device)
        else:
            if mask.dim() != 2 or mask.shape[0] != batch or mask.shape[1] != length:
                raise InvalidComposition(
                    f"ReFT reads each row's attended tokens from a (batch, sequence) attention mask; got shape "
                    f"{tuple(mask.shape)} for hidden states of shape {tuple(hidden.shape[:2])}")
            keep = (mask == 1).to(hidden.device)
            first = keep.long().argmax(dim=1)  # the first attended token (0 for a row without any)
            end = first + keep.sum(dim=-1)
        prefix = suffix = None
        if reft.prefix_positions > 0:
            prefix = first.view(-1, 1) + torch.arange(min(reft.prefix_positions, length), device=hidden.device)
            self._check_bounds(prefix, length, "prefix_positions", reft.prefix_positions, mask)
        if reft.suffix_positions > 0:
            suffix = end.view(-1, 1) + torch.arange(-min(reft.suffix_positions, length), 0, device=hidden.device)
            self._check_bounds(suffix, length, "suffix_positions", reft.suffix_positions, mask)
        memo[key] = (prefix, suffix)
        return prefix, suffix

    def _check_bounds(self, index: torch.Tensor, length: int, field: str, count: int, mask) -> None:
        bad = ((index < 0) | (index >= length)).any(dim=1)
        if bool(bad.any()):
            row = int(bad.nonzero()[0, 0])
            attended = int((mask[row] == 1).sum()) if mask is not None else length
            raise InvalidAdapterConfig(
                f"{field}={count}: row {row} has {attended} attended tokens, so its ReFT positions fall outside "
                f"the sequence of {length} (the adapters library fails on such rows too); pad to a length that "
                f"holds them or lower {field}", field=field)

    # --- composition (ComposableLayer dispatches the blocks) ---
    def compose_single(self, name: str, state: ReftState) -> ReftState:
        note_ran(id(self))
        reft = self.adapters[name]
        prefix, suffix = self._positions(state.hidden, reft)
        return state._replace(hidden=reft(state.hidden, prefix, suffix))

    def compose_stack(self, block: Stack, state: ReftState, lvl: int) -> ReftState:
        first = block.first()
        held = sorted(self.adapters.keys() & block.flatten())
        dropped = [name for name in held if name != first]
        if dropped:
            raise InvalidComposition(
                f"ReFT adapter {dropped[0]!r} in {block!r}: the adapters library applies only the first adapter "
                f"of a setup ({first!r}) at a ReFT layer and would silently skip it; activate ReFT adapters alone "
                f"or first in a Stack, one at a time")
        return self.compose_single(first, state) if first in self.adapters else state

    def compose_absent(self, name: str, state: ReftState) -> ReftState:
        return state

    def _refuse(self, block, state, lvl: int):
        held = sorted(self.adapters.keys() & block.flatten())
        raise InvalidComposition(
            f"{type(block).__name__} with ReFT adapter {held[0]!r} is not supported: the adapters library applies "
            f"only a setup's first adapter at ReFT layers (it fails on {type(block).__name__} blocks of ReFT "
            f"adapters); use a mixed-adapter batch (adapter_names=[...]) for one ReFT adapter per row")

    compose_parallel = _refuse
    compose_batch_split = _refuse
    compose_average = _refuse
    compose_other = _refuse

    def map_state(self, state: ReftState, fn) -> ReftState:
        return state._replace(hidden=fn(state.hidden))

    def batch_size(self, state: ReftState) -> int:
        return state.hidden.shape[0]


def _hidden_of(output, site: ReftLayer) -> torch.Tensor:
    hidden = output if isinstance(output, torch.Tensor) else (
        output[0] if isinstance(output, tuple) and output and isinstance(output[0], torch.Tensor) else None)
    if hidden is None or hidden.dim() != 3:
        raise target_missing(site.engine.spec.model_type, site.path,
                             f"the layer returned {type(output).__name__}, not its hidden states (batch, sequence, "
                             f"width) that ReFT intervenes on")
    return hidden


def _replace_hidden(output, hidden: torch.Tensor):
    if isinstance(output, torch.Tensor):
        return hidden
    return (hidden,) + tuple(output[1:])
