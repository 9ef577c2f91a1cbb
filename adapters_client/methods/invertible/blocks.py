"""Invertible coupling blocks (NICE) applied to the embedding output; names follow the adapters library."""

from __future__ import annotations

import torch
from torch import nn

from ...errors import InvalidAdapterConfig
from ..bottleneck.modules import Activation, bert_init

# inv_adapter values the engine runs. The adapters library 1.3.0 also accepts "glow", but its GLOW block cannot run
# on (batch, sequence, hidden) embeddings (it splits the sequence axis and returns a list): no reference exists.
SUPPORTED_BLOCKS = ("nice",)


def _subnet(width_in: int, width_out: int, non_linearity: str, reduction_factor: float) -> nn.Sequential:
    """Linear -> activation -> Linear, bottleneck ``int(width_in // reduction_factor)`` (keys ``0`` and ``2``)."""
    hidden = int(width_in // reduction_factor)
    return nn.Sequential(nn.Linear(width_in, hidden), Activation(non_linearity), nn.Linear(hidden, width_out))


class NICECouplingBlock(nn.Module):
    """Additive coupling (Dinh et al., 2015) over the last axis: ``y1 = x1 + F(x2)``, ``y2 = x2 + G(y1)``.

    ``x1`` is the first ``width // 2`` channels. ``forward(x, rev=True)`` is the exact inverse.
    """

    def __init__(self, width: int, non_linearity: str = "relu", reduction_factor: float = 2):
        super().__init__()
        self.split_len1 = width // 2
        self.split_len2 = width - width // 2
        self.F = _subnet(self.split_len2, self.split_len1, non_linearity, reduction_factor)
        self.G = _subnet(self.split_len1, self.split_len2, non_linearity, reduction_factor)

    def forward(self, x: torch.Tensor, rev: bool = False) -> torch.Tensor:
        x1, x2 = x[..., :self.split_len1], x[..., self.split_len1:]
        if rev:
            y2 = x2 - self.G(x1)
            y1 = x1 - self.F(y2)
        else:
            y1 = x1 + self.F(x2)
            y2 = x2 + self.G(y1)
        return torch.cat((y1, y2), dim=-1)


def build_block(config, width: int) -> nn.Module:
    """The coupling block of a bottleneck config with ``inv_adapter`` set (BERT-style initialisation)."""
    if config.inv_adapter not in SUPPORTED_BLOCKS:
        raise InvalidAdapterConfig(
            f"inv_adapter {config.inv_adapter!r} is not supported (supported: {list(SUPPORTED_BLOCKS)}); the adapters "
            f"library's GLOW block fails on sequence embeddings, so there is no reference to match",
            field="inv_adapter")
    if config.inv_adapter_reduction_factor is None:
        raise InvalidAdapterConfig("inv_adapter needs inv_adapter_reduction_factor", field="inv_adapter_reduction_factor")
    block = NICECouplingBlock(width, config.non_linearity, config.inv_adapter_reduction_factor)
    block.apply(bert_init)
    return block
