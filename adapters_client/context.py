"""Per-forward state: temporary adapter setups and Parallel batch replication (contextvars)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import torch

_SETUP: contextvars.ContextVar = contextvars.ContextVar("adapters_client_setup", default=None)
_FORWARD: contextvars.ContextVar = contextvars.ContextVar("adapters_client_forward", default=None)


class Replication(NamedTuple):
    """Where a Parallel setup replicates the batch in this forward: at ``layer``'s start (``site`` None) or at
    its bottleneck ``site`` (a location key), from ``batch`` rows to ``batch * channels``."""

    layer: int
    site: Optional[str]
    batch: int
    channels: int


@dataclass
class ForwardState:
    """What one forward pass of the model needs to share between layers."""

    parallel_channels: int = 1
    original_batch_size: Optional[int] = None  # set once the batch is replicated for Parallel
    pending_replication: Optional[Replication] = None  # planned by the engine (AdapterDrop-aware Parallel)
    prefix_states: dict = field(default_factory=dict)
    gating_scores: dict = field(default_factory=dict)
    extras: dict = field(default_factory=dict)


class AdapterSetup:
    """``with AdapterSetup(Stack("a")):`` overrides the active adapters for the calls inside."""

    def __init__(self, adapter_setup: Any, skip_layers: Optional[list] = None):
        from .composition import parse_composition

        self.adapter_setup = parse_composition(adapter_setup)
        self.skip_layers = skip_layers
        self._token = None

    def __enter__(self) -> "AdapterSetup":
        self._token = _SETUP.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _SETUP.reset(self._token)

    @staticmethod
    def current() -> Optional["AdapterSetup"]:
        return _SETUP.get()


class ForwardContext:
    """Opened by the model around one forward pass; layers read it through ``ForwardContext.current()``."""

    def __init__(self) -> None:
        self.state = ForwardState()
        self._token = None

    def __enter__(self) -> ForwardState:
        self._token = _FORWARD.set(self.state)
        return self.state

    def __exit__(self, *exc) -> None:
        _FORWARD.reset(self._token)

    @staticmethod
    def current() -> Optional[ForwardState]:
        return _FORWARD.get()


def repeat_batched(values, batch: int, channels: int, memo: dict):
    """``values`` (tuple or dict) with every tensor of dim >= 2 and ``batch`` rows repeated ``channels`` times.

    1-D tensors (cache positions, head masks) and tensors of another batch size are left alone; tuples of
    tensors are handled one level deep. ``memo`` maps id(tensor) -> (tensor, repeated) so that a mask the
    model computed once is repeated once per forward, not once per layer.
    """
    def rep(value):
        if isinstance(value, torch.Tensor):
            if value.dim() < 2 or value.shape[0] != batch:
                return value
            hit = memo.get(id(value))
            if hit is not None and hit[0] is value:
                return hit[1]
            out = value.repeat(channels, *([1] * (value.dim() - 1)))
            memo[id(value)] = (value, out)
            return out
        if isinstance(value, tuple) and value and all(isinstance(v, torch.Tensor) for v in value):
            return tuple(rep(v) for v in value)
        return value

    if isinstance(values, dict):
        return {k: rep(v) for k, v in values.items()}
    return tuple(rep(v) for v in values)
