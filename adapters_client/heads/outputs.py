"""The output of a forward pass through several heads (Parallel, BatchSplit, a list of heads)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import List, Optional

import torch
from transformers.utils import ModelOutput

from .errors import InvalidHead


@dataclass
class MultiHeadOutput(ModelOutput):
    """One ``ModelOutput`` per head; ``loss`` is the sum of their losses when every branch has one.

    ``out[i]`` is branch ``i``, ``out["loss"]`` the summed loss; iterating yields the branches.
    """

    head_outputs: List[ModelOutput] = None
    loss: Optional[torch.FloatTensor] = None

    @property
    def logits(self) -> torch.Tensor:
        """The branches' logits stacked along the batch (only when their shapes agree)."""
        parts = [out["logits"] for out in self.head_outputs]
        if len({tuple(p.shape[1:]) for p in parts}) > 1:
            raise InvalidHead(
                "The branches' logits have different shapes and cannot be stacked; index the output per branch.",
                shapes=[list(p.shape) for p in parts],
            )
        return torch.cat(parts, dim=0)

    def __getitem__(self, key):
        if isinstance(key, int):
            return self.head_outputs[key]
        return super().__getitem__(key)

    def __iter__(self):
        return iter(self.head_outputs)

    def __len__(self):
        return len(self.head_outputs)
