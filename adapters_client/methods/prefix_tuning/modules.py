"""Prefix modules; parameter names (wte, control_trans) follow the adapters library."""

from __future__ import annotations

import torch
from torch import nn

from ..bottleneck.modules import Activation


class PrefixMLP(nn.Module):
    """Prefix reparametrised by an MLP: embeddings -> bottleneck -> keys/values of every layer."""

    def __init__(self, n_layers: int, n_heads: int, head_dim: int, hidden: int, config):
        super().__init__()
        self.n_layers, self.n_heads, self.head_dim, self.length = n_layers, n_heads, head_dim, config.prefix_length
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        self.wte = nn.Embedding(config.prefix_length, hidden)
        self.control_trans = nn.Sequential(
            nn.Linear(hidden, config.bottleneck_size),
            Activation(config.non_linearity),
            nn.Linear(config.bottleneck_size, n_layers * 2 * n_heads * head_dim),
        )
        self.dropout = nn.Dropout(config.dropout)

    def _flat(self) -> torch.Tensor:
        tokens = torch.arange(self.length, device=self.wte.weight.device)
        return self.control_trans(self.wte(tokens))

    def forward(self, batch_size: int) -> list:
        """Per layer: (keys, values), each (batch, heads, prefix_length, head_dim)."""
        values = self._flat().view(1, self.length, self.n_layers * 2, self.n_heads, self.head_dim)
        values = self.dropout(values.expand(batch_size, -1, -1, -1, -1))
        values = values.permute(2, 0, 3, 1, 4)  # (layers*2, batch, heads, length, head_dim)
        return [(values[2 * i], values[2 * i + 1]) for i in range(self.n_layers)]


class PrefixFlat(PrefixMLP):
    """Prefix trained directly (``flat=True``): one parameter holding every layer's keys/values."""

    def __init__(self, n_layers: int, n_heads: int, head_dim: int, hidden: int, config):
        nn.Module.__init__(self)
        self.n_layers, self.n_heads, self.head_dim, self.length = n_layers, n_heads, head_dim, config.prefix_length
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        self.control_trans = nn.Parameter(torch.randn(config.prefix_length * n_layers * 2 * n_heads * head_dim))
        self.dropout = nn.Dropout(config.dropout)

    def _flat(self) -> torch.Tensor:
        return self.control_trans
