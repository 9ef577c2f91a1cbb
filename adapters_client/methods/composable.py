"""One composition dispatcher for every per-layer method (bottleneck, LoRA, ...).

A per-layer site holds its method's modules in ``adapters`` and carries a *state* (a NamedTuple of tensors
whose first dimension is the batch) through a composition block. ``ComposableLayer.compose`` dispatches
Stack, Parallel, BatchSplit and Average here, once; a method says only what is particular to it:

- ``map_state(state, fn)``: ``fn`` applied to every tensor of the state; ``batch_size(state)``;
- ``compose_single(name, state)``: one adapter;
- ``before_block(block, state)``: what runs before a block's children (bottleneck: the first adapter's
  pre-processing; by default nothing) and ``before_adapter(name, state)``, before each adapter of a Stack;
- ``join_parallel`` / ``join_batch_split`` / ``join_average``: the branches' states back into one;
- ``compose_absent`` / ``compose_other``: a name this site does not hold, a block type it has no handler for;
- ``extra_handlers()``: block types only this method composes (bottleneck: Fuse, Split).
"""

from __future__ import annotations

from typing import Optional

import torch

from ..composition import AdapterCompositionBlock, Average, BatchSplit, Parallel, Stack
from ..context import ForwardContext, MixedRows
from ..errors import InvalidComposition


class ComposableLayer:
    """Base of per-layer sites; subclasses set ``self.adapters`` (an ``nn.ModuleDict``)."""

    # --- dispatch ---
    def compose(self, setup, state, lvl: int):
        handler = self._handlers().get(type(setup))
        if handler is not None:
            return handler(setup, state, lvl)
        if isinstance(setup, AdapterCompositionBlock):
            return self.compose_other(setup, state, lvl)
        if setup in self.adapters:
            return self.compose_single(setup, state)
        return self.compose_absent(setup, state)

    def _handlers(self) -> dict:
        handlers = self.__dict__.get("_block_handlers")
        if handlers is None:  # built once per site: compose runs at every hooked module of every forward
            handlers = {Stack: self.compose_stack, Parallel: self.compose_parallel, Average: self.compose_average,
                        BatchSplit: self.compose_batch_split, MixedRows: self.compose_mixed_rows}
            handlers.update(self.extra_handlers())
            self.__dict__["_block_handlers"] = handlers
        return handlers

    def compose_child(self, child, state, lvl: int, before: bool = False):
        """A block's child: a nested block, an adapter of this site, or None (an adapter this site lacks)."""
        if isinstance(child, AdapterCompositionBlock):
            return self.compose(child, state, lvl + 1)
        if child in self.adapters:
            return self.compose_single(child, self.before_adapter(child, state) if before else state)
        return None

    # --- the blocks ---
    def compose_stack(self, block: Stack, state, lvl: int):
        for child in block:
            result = self.compose_child(child, state, lvl, before=True)
            state = result if result is not None else state
        return state

    def compose_parallel(self, block: Parallel, state, lvl: int):
        channels = len(block)
        forward = ForwardContext.current()
        original = forward.original_batch_size if forward is not None else None
        batch = self.batch_size(state)
        if original is None or batch == original:  # the model did not replicate the batch: do it here
            state = self.map_state(state, lambda t: t.repeat(channels, *([1] * (t.dim() - 1))))
            original = batch
        if self.batch_size(state) != original * channels:
            raise InvalidComposition("the batch size must be divisible by the number of Parallel branches")
        state = self.before_block(block, state)
        parts = []
        for i, child in enumerate(block):
            part = self.map_state(state, lambda t: t[i * original:(i + 1) * original])
            result = self.compose_child(child, part, lvl)
            parts.append(result if result is not None else part)
        return self.join_parallel(state, parts)

    def compose_batch_split(self, block: BatchSplit, state, lvl: int):
        rows = self.batch_size(state)
        if sum(block.batch_sizes) != rows:
            raise InvalidComposition(f"batch size {rows} does not match BatchSplit sizes {block.batch_sizes}")
        state = self.before_block(block, state)
        parts, start = [], 0
        for size, child in zip(block.batch_sizes, block):
            part = self.map_state(state, lambda t: t[start:start + size])
            result = self.compose_child(child, part, lvl)
            parts.append(result if result is not None else part)
            start += size
        return self.join_batch_split(state, parts)

    def compose_mixed_rows(self, block: MixedRows, state, lvl: int):
        """A mixed-adapter batch reaches ``compose`` only at a site without a per-row path (bottleneck and LoRA
        sites take their rows apart in their hooks, before composing): refused, never applied to every row."""
        raise InvalidComposition(f"{type(self).__name__} has no per-row path: its adapters {sorted(block.flatten())} "
                                 f"cannot share a mixed-adapter batch (adapter_names)")

    def compose_average(self, block: Average, state, lvl: int):
        state = self.before_block(block, state)
        return self.join_average(block, state, [self.compose_child(c, state, lvl) for c in block])

    @staticmethod
    def weighted_mean(block: Average, outputs: list, like: torch.Tensor) -> torch.Tensor:
        """The adapters library's Average: the mean over the children's outputs times their weights
        (the weights take ``like``'s dtype and device)."""
        weights = torch.tensor(block.weights[: len(outputs)], dtype=like.dtype, device=like.device)
        stacked = torch.stack(outputs) * weights.view(-1, *([1] * outputs[0].dim()))
        return stacked.mean(dim=0)

    # --- what a method may change ---
    def extra_handlers(self) -> dict:
        return {}

    def before_block(self, block, state):
        return state

    def before_adapter(self, name: str, state):
        return state

    def compose_absent(self, name: str, state):
        return state

    def compose_other(self, block, state, lvl: int):
        raise InvalidComposition(f"{type(block).__name__} is not supported by {type(self).__name__}")

    def compose_single(self, name: str, state):  # pragma: no cover - every method defines it
        raise NotImplementedError

    def map_state(self, state, fn):  # pragma: no cover - every method defines it
        raise NotImplementedError

    def batch_size(self, state) -> int:  # pragma: no cover - every method defines it
        raise NotImplementedError

    def join_parallel(self, state, parts: list):  # pragma: no cover - every method defines it
        raise NotImplementedError

    def join_batch_split(self, state, parts: list):  # pragma: no cover - every method defines it
        raise NotImplementedError

    def join_average(self, block: Average, state, parts: list):  # pragma: no cover - every method defines it
        """``parts``: each child's state, None for an adapter this site does not hold."""
        raise NotImplementedError


def last_name(states: list) -> Optional[str]:
    """The name of the last adapter that ran in any of ``states`` (their ``last`` field), or None."""
    return next((s.last for s in reversed(states) if s.last), None)
