"""Per-forward state: temporary adapter setups and Parallel batch replication (contextvars)."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass, field
from typing import Any, NamedTuple, Optional

import torch

from .composition import AdapterCompositionBlock

_SETUP: contextvars.ContextVar = contextvars.ContextVar("adapters_client_setup", default=None)
_FORWARD: contextvars.ContextVar = contextvars.ContextVar("adapters_client_forward", default=None)
# a mixed-adapter batch (``adapter_names=[...]``): the RowAdapters of this forward, or, while one group of
# its rows runs through a site, that group's single-adapter setup (RowAdapters.run_group)
_ROWS: contextvars.ContextVar = contextvars.ContextVar("adapters_client_rows", default=None)
# ``model(..., task_ids=...)``: the TaskIds of this forward (MultiTask blocks route each row by it)
_TASKS: contextvars.ContextVar = contextvars.ContextVar("adapters_client_task_ids", default=None)


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


class MixedRows(AdapterCompositionBlock):
    """The setup of a mixed batch as layers see it: its children are the distinct adapter names (sorted, so
    the first-forward audit keys on which adapters run, not on the row layout). Layers serve it through
    their per-row path; a site without one refuses it (``ComposableLayer.compose_mixed_rows``)."""

    def __init__(self, names):
        super().__init__(*sorted(names))

    def __repr__(self) -> str:
        return f"MixedRows[{', '.join(self.children)}]"


class RowGroup(NamedTuple):
    """The rows of a mixed batch that use adapter ``name`` (None: no adapter): ``index`` (a 1-D long tensor)
    and, when they are consecutive, ``span`` = (start, end) so that they are taken as a view."""

    name: Optional[str]
    index: torch.Tensor
    span: Optional[tuple]


class RowAdapters:
    """One adapter (or None) per row of the batch, for one forward pass (``model(..., adapter_names=...)``).

    Built by ``AdapterEngine.row_adapters`` (which validates the names); entered as a context it overrides
    the active setup, and any ``AdapterSetup``, for the calls inside only (a contextvar: never seen by the
    next call or another thread). Per-layer sites take each group of rows, run it through the single-adapter
    path (or one batched pass) and put the result back (``take_rows`` / ``put_rows``); rows without an
    adapter are left as the backbone made them.
    """

    def __init__(self, names: list, setup):
        self.names = list(names)
        self.setup = setup  # the MixedRows block the engine's current_setup() returns (None: no adapter at all)
        self.singles: dict = {}  # name -> Stack(name), the setup of one group
        self._groups: dict = {}  # device -> [RowGroup]
        self._selections: dict = {}  # (device, which adapters a site holds) -> selection()
        self._token = None

    def groups(self, device) -> list:
        """The row groups (adapters in first-appearance order), index tensors on ``device``."""
        found = self._groups.get(device)
        if found is None:
            rows: dict = {}
            for i, name in enumerate(self.names):
                rows.setdefault(name, []).append(i)
            found = []
            for name, members in rows.items():
                span = (members[0], members[-1] + 1) if members[-1] - members[0] + 1 == len(members) else None
                found.append(RowGroup(name, torch.tensor(members, dtype=torch.long, device=device), span))
            self._groups[device] = found
        return found

    def selection(self, device, held) -> tuple:
        """(a RowGroup of every row whose adapter is in ``held``, in row order; those rows' adapter names)."""
        key = (device, tuple(name in held for name in self._distinct()))
        found = self._selections.get(key)
        if found is None:
            picked = [i for i, name in enumerate(self.names) if name is not None and name in held]
            span = (picked[0], picked[-1] + 1) if picked and picked[-1] - picked[0] + 1 == len(picked) else None
            group = RowGroup(None, torch.tensor(picked, dtype=torch.long, device=device), span)
            found = self._selections[key] = (group, [self.names[i] for i in picked])
        return found

    def _distinct(self) -> list:
        return self.setup.children if self.setup is not None else []

    def adapter_groups(self, device, held) -> list:
        """The groups whose adapter is in ``held`` (a site's adapters): the rows that site changes."""
        return [g for g in self.groups(device) if g.name is not None and g.name in held]

    def __enter__(self) -> "RowAdapters":
        self._token = _ROWS.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _ROWS.reset(self._token)

    @staticmethod
    def current() -> Optional["RowAdapters"]:
        """The mixed batch of this forward, None outside one (or while one of its groups runs)."""
        value = _ROWS.get()
        return value if isinstance(value, RowAdapters) else None

    def run_group(self, name: str, fn, *args):
        """``fn(*args)`` with ``Stack(name)`` as the current setup (the single-adapter path, exactly)."""
        token = _ROWS.set(self.singles[name])
        try:
            return fn(*args)
        finally:
            _ROWS.reset(token)


def row_override():
    """What a mixed batch makes the current setup: its MixedRows block, a group's ``Stack(name)``, or
    ``_NO_OVERRIDE`` outside a mixed batch."""
    value = _ROWS.get()
    if value is None:
        return _NO_OVERRIDE
    return value.setup if isinstance(value, RowAdapters) else value


_NO_OVERRIDE = object()


def take_rows(tensor: Optional[torch.Tensor], group: RowGroup) -> Optional[torch.Tensor]:
    """The rows of ``group`` (a view when they are consecutive)."""
    if tensor is None:
        return None
    if group.span is not None:
        return tensor[group.span[0]:group.span[1]]
    return tensor.index_select(0, group.index)


def put_rows(target: torch.Tensor, group: RowGroup, values: torch.Tensor) -> None:
    """Write ``values`` into ``group``'s rows of ``target`` (in place; ``target`` is a fresh copy)."""
    if group.span is not None:
        target[group.span[0]:group.span[1]] = values
    else:
        target.index_copy_(0, group.index, values.to(target.dtype))


class TaskIds:
    """The ``task_ids`` of one forward call (a tensor or list: one child index or adapter name per row), which
    ``MultiTask`` blocks read (methods/lora/mtl.py). Entered as a context by ``AdapterModel.forward`` and by
    ``init()``-wrapped forwards for the calls inside only, as ``adapter_names`` is; ``memo`` keeps each
    site's resolved routing for the rest of the forward."""

    def __init__(self, task_ids):
        self.task_ids = task_ids
        self.memo: dict = {}
        self._token = None

    def __enter__(self) -> "TaskIds":
        self._token = _TASKS.set(self)
        return self

    def __exit__(self, *exc) -> None:
        _TASKS.reset(self._token)

    @staticmethod
    def current() -> Optional["TaskIds"]:
        return _TASKS.get()


def task_context(task_ids, adapter_names=None):
    """The context a forward call enters for ``task_ids`` (a no-op without them). With ``adapter_names`` too the
    routing is ambiguous (each row names its adapter already): refused."""
    if task_ids is None:
        return _NoTasks()
    if adapter_names is not None:
        from .errors import InvalidComposition

        raise InvalidComposition("pass either adapter_names (one adapter per row) or task_ids (MultiTask routing), "
                                 "not both", field="task_ids")
    return TaskIds(task_ids)


class _NoTasks:
    """No ``task_ids`` given: a forward nested in one that had them still sees none (as the library's context)."""

    def __enter__(self):
        self._token = _TASKS.set(None)
        return None

    def __exit__(self, *exc) -> None:
        _TASKS.reset(self._token)
