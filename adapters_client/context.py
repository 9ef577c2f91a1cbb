"""Per-forward state: temporary adapter setups and Parallel batch replication (contextvars)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any, Optional

_SETUP: contextvars.ContextVar = contextvars.ContextVar("adapters_client_setup", default=None)
_FORWARD: contextvars.ContextVar = contextvars.ContextVar("adapters_client_forward", default=None)


@dataclass
class ForwardState:
    """What one forward pass of the model needs to share between layers."""

    parallel_channels: int = 1
    original_batch_size: Optional[int] = None
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
