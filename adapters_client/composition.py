"""Composition blocks (Stack, Fuse, Parallel, Average, BatchSplit, Split, MultiTask): data plus a nesting table."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional, Union

from .errors import InvalidComposition


class AdapterCompositionBlock(Sequence):
    """A block of adapter names and nested blocks."""

    def __init__(self, *children):
        if not children:
            raise InvalidComposition(f"{type(self).__name__} needs at least one adapter")
        self.children = [_child(c) for c in children]

    def __getitem__(self, key):
        return self.children[key]

    def __len__(self) -> int:
        return len(self.children)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.children == other.children and self._kwargs() == other._kwargs()

    def __hash__(self) -> int:
        return hash((type(self).__name__, repr(self.children)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}[{', '.join(map(str, self.children))}]"

    def _kwargs(self) -> dict:
        return {}

    def first(self) -> str:
        child = self.children[0]
        return child if isinstance(child, str) else child.first()

    def last(self) -> str:
        child = self.children[-1]
        return child if isinstance(child, str) else child.last()

    @property
    def parallel_channels(self) -> int:
        return max(c.parallel_channels if isinstance(c, AdapterCompositionBlock) else 1 for c in self.children)

    def flatten(self) -> set[str]:
        names: set[str] = set()
        for child in self.children:
            names |= {child} if isinstance(child, str) else child.flatten()
        return names


def _child(child):
    if isinstance(child, (str, AdapterCompositionBlock)):
        return child
    if isinstance(child, Sequence) and not isinstance(child, (bytes, bytearray)):
        return Stack(*child)
    raise InvalidComposition(f"composition children must be adapter names or blocks, got {child!r}")


class Stack(AdapterCompositionBlock):
    """Adapters applied one after another."""


class Parallel(AdapterCompositionBlock):
    """Each branch runs on its own copy of the batch; one output per branch."""

    @property
    def parallel_channels(self) -> int:
        return len(self.children)


class Fuse(AdapterCompositionBlock):
    """AdapterFusion over the outputs of the children."""

    def __init__(self, *children, name: Optional[str] = None):
        super().__init__(*children)
        self._name = name

    @property
    def name(self) -> str:
        return self._name or ",".join(c if isinstance(c, str) else c.last() for c in self.children)

    def _kwargs(self) -> dict:
        return {"name": self.name}


class Split(AdapterCompositionBlock):
    """Splits the sequence: the first ``splits[0]`` tokens go to the first child, and so on."""

    def __init__(self, *children, splits: Union[list, int]):
        super().__init__(*children)
        self.splits = list(splits) if isinstance(splits, (list, tuple)) else [splits] * len(children)
        _check_sizes(self.splits, len(self.children), "splits")

    def _kwargs(self) -> dict:
        return {"splits": self.splits}


class BatchSplit(AdapterCompositionBlock):
    """Splits the batch: the first ``batch_sizes[0]`` examples go to the first child, and so on."""

    def __init__(self, *children, batch_sizes: Union[list, int]):
        super().__init__(*children)
        sizes = batch_sizes
        self.batch_sizes = list(sizes) if isinstance(sizes, (list, tuple)) else [sizes] * len(children)
        _check_sizes(self.batch_sizes, len(self.children), "batch_sizes")

    def _kwargs(self) -> dict:
        return {"batch_sizes": self.batch_sizes}


class Average(AdapterCompositionBlock):
    """Weighted mean of the children's outputs (weights normalised to sum 1 by default)."""

    def __init__(self, *children, weights: Optional[list] = None, normalize_weights: bool = True):
        super().__init__(*children)
        if weights is None:
            self.weights = [1 / len(children)] * len(children)
        else:
            weights = [float(w) for w in weights]
            if len(weights) != len(children):
                raise InvalidComposition(f"Average has {len(children)} adapters but {len(weights)} weights")
            total = sum(weights)
            if normalize_weights and total == 0:
                raise InvalidComposition("Average weights sum to zero")
            self.weights = [w / total for w in weights] if normalize_weights else weights

    def _kwargs(self) -> dict:
        return {"weights": self.weights}


class MultiTask(AdapterCompositionBlock):
    """Routes each row to the child its task id names (``task_ids`` of the forward call: child indices or adapter
    names, one per row); LoRA sites run it (MTL-LoRA's adapters usually ``share_parameters``)."""


def _check_sizes(sizes: list, count: int, name: str) -> None:
    if len(sizes) != count or not all(isinstance(s, int) and s >= 0 for s in sizes):
        raise InvalidComposition(f"{name} must be {count} non-negative integers, got {sizes!r}")


# which block types may be nested inside which (as in the adapters library)
ALLOWED_NESTINGS = {
    Stack: (str, Fuse, Split, Parallel, BatchSplit, Average, MultiTask),
    Fuse: (str, Stack),
    MultiTask: (str, Stack, Average, Fuse),
    Split: (str, Split, Stack, BatchSplit, Average),
    Parallel: (str, Stack, BatchSplit, Average),
    BatchSplit: (str, Stack, Split, BatchSplit, Average),
    Average: (str, Stack, Split, BatchSplit),
}


def validate_composition(block, level: int = 0) -> None:
    """Raise InvalidComposition for a nesting the engine cannot run."""
    if level > 1 and not isinstance(block, (Stack, str)):
        raise InvalidComposition(f"adapter setup is too deep: cannot have {block} at level {level}")
    if not isinstance(block, AdapterCompositionBlock):
        return
    allowed = ALLOWED_NESTINGS[type(block)]
    for child in block:
        if type(child) not in allowed:
            names = ", ".join(t.__name__ for t in allowed)
            raise InvalidComposition(f"cannot nest {child!r} inside {type(block).__name__}; allowed: {names}")
        validate_composition(child, level + 1)


def parse_composition(setup, level: int = 0) -> Optional[AdapterCompositionBlock]:
    """Name, list or block -> validated block (a single name becomes ``Stack(name)``)."""
    if setup is None or (isinstance(setup, (list, tuple, str)) and len(setup) == 0):
        return None
    if isinstance(setup, str):
        return Stack(setup) if level == 0 else setup
    if isinstance(setup, AdapterCompositionBlock):
        validate_composition(setup, level)
        return setup
    if isinstance(setup, Sequence):
        children = [parse_composition(c, level + 1) if isinstance(c, (list, tuple)) else c for c in setup]
        block = Fuse(*children) if level == 1 else Stack(*children)
        validate_composition(block, level)
        return block
    raise InvalidComposition(f"cannot read an adapter setup from {type(setup).__name__}")


_BLOCKS = {cls.__name__: cls for cls in (Stack, Parallel, Fuse, Split, BatchSplit, Average, MultiTask)}


def setup_to_dict(block) -> dict:
    """JSON form of a block (the adapters library's adapter_setup.json layout)."""
    children = [setup_to_dict(c) if isinstance(c, AdapterCompositionBlock) else {"type": "single", "children": [c]}
                for c in block]
    data = {"type": type(block).__name__, "children": children}
    kwargs = block._kwargs()
    if isinstance(block, Fuse) and block._name is None:
        kwargs = {}
    if kwargs:
        data["kwargs"] = kwargs
    return data


def setup_from_dict(data: dict) -> AdapterCompositionBlock:
    """Inverse of ``setup_to_dict``; InvalidComposition for unknown block types."""
    cls = _BLOCKS.get(data.get("type"))
    if cls is None:
        raise InvalidComposition(f"unknown composition block {data.get('type')!r}")
    children = [c["children"][0] if c.get("type") == "single" else setup_from_dict(c) for c in data["children"]]
    return cls(*children, **data.get("kwargs", {}))
