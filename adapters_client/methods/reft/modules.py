"""ReFT intervention modules; parameter names follow the adapters library 1.3.0 so checkpoints interchange.

One ``ReftModule`` per adapter and layer holds one unit (``tied_weights``: prefix and suffix positions
share it) or two (prefix, suffix). A unit maps the selected hidden states ``h`` to
``h + R^T (act(W h + b) - R h)`` (DiReFT: without ``- R h``), then dropout; ``R`` is an ``r x hidden``
projection, orthonormal rows for LoReFT (torch's orthogonal parametrization, so the checkpoint holds
``projection.parametrizations.weight.original`` and its ``...weight.0.base`` as the library's does).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...configs.reft import ReftConfig
from ..bottleneck.modules import Activation


class ReftUnit(nn.Module):
    """One low-rank intervention: ``learned_source`` (W, b) and ``projection`` (R)."""

    def __init__(self, hidden: int, config: ReftConfig, dtype: Optional[torch.dtype] = None):
        super().__init__()
        self.orthogonal = config.orthogonality
        self.subtract_projection = config.subtract_projection
        if config.init_weights_seed:  # the library reseeds before every unit, and only for a truthy seed
            torch.manual_seed(config.init_weights_seed)
            if torch.cuda.is_available():
                torch.cuda.manual_seed_all(config.init_weights_seed)
        self.learned_source = nn.Linear(hidden, config.r, bias=True, dtype=dtype)
        projection = nn.Linear(hidden, config.r, bias=False, dtype=dtype)
        if self.orthogonal and projection.weight.is_meta:
            projection = _orthogonal_twin(projection)
        elif self.orthogonal:
            with torch.no_grad():
                # a checkpoint load skips random initialisation (weights.overwritten_init): the orthogonal
                # parametrization must still start from finite values (all of them are overwritten)
                if not torch.isfinite(projection.weight).all():
                    projection.weight.zero_()
            projection = nn.utils.parametrizations.orthogonal(projection)
        self.projection = projection
        self.non_linearity = Activation(config.non_linearity) if config.non_linearity else nn.Identity()
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, states: torch.Tensor) -> torch.Tensor:
        weight = self.projection.weight  # (r, hidden); computed once (parametrized for LoReFT)
        source = self.non_linearity(self.learned_source(states))
        if self.subtract_projection:
            source = source - nn.functional.linear(states, weight)
        return self.dropout(states + torch.matmul(source, weight))


def _orthogonal_twin(linear: nn.Linear) -> nn.Module:
    """The saved tensors of ``orthogonal(linear)`` on the meta device (the hub's shape check builds adapters there):
    torch's parametrization computes from values on registration, which meta tensors do not have. Same keys and
    shapes: ``parametrizations.weight.original`` (r, hidden) and the trivialization's square ``...0.base``."""
    rows, cols = linear.weight.shape
    weight = nn.Module()
    weight.original = nn.Parameter(torch.empty_like(linear.weight))
    trivialization = nn.Module()
    trivialization.register_buffer("base", linear.weight.new_empty(max(rows, cols), max(rows, cols)))
    weight.add_module("0", trivialization)
    twin = nn.Module()
    twin.parametrizations = nn.ModuleDict({"weight": weight})
    return twin


class ReftModule(nn.Module):
    """The units of one adapter at one layer and where they act (``prefix_positions``, ``suffix_positions``)."""

    def __init__(self, hidden: int, config: ReftConfig, dtype: Optional[torch.dtype] = None):
        super().__init__()
        self.prefix_positions = config.prefix_positions
        self.suffix_positions = config.suffix_positions
        self.tied_weights = config.tied_weights
        self.units = nn.ModuleList([ReftUnit(hidden, config, dtype) for _ in range(1 if config.tied_weights else 2)])

    def forward(self, hidden: torch.Tensor, prefix_index: Optional[torch.Tensor],
                suffix_index: Optional[torch.Tensor]) -> torch.Tensor:
        """``hidden`` (batch, seq, width) with the intervened positions replaced.

        ``prefix_index`` / ``suffix_index``: (batch, k) positions of each row (None when that side is 0),
        k = min(positions, seq) as in the library. Both sides read the layer output before either is written;
        the suffix is written last (it wins where the two overlap), as in the library.
        """
        width = hidden.shape[-1]
        prefix = suffix = None
        if prefix_index is not None:
            prefix_index = prefix_index.unsqueeze(-1).expand(-1, -1, width)
            prefix = hidden.gather(1, prefix_index)
        if suffix_index is not None:
            suffix_index = suffix_index.unsqueeze(-1).expand(-1, -1, width)
            suffix = hidden.gather(1, suffix_index)
        empty = hidden.new_zeros(hidden.shape[0], 0, width)
        prefix = prefix if prefix is not None else empty
        suffix = suffix if suffix is not None else empty
        if self.tied_weights:
            adapted = self.units[0](torch.cat([prefix, suffix], dim=1))
        else:
            adapted = torch.cat([self.units[0](prefix), self.units[1](suffix)], dim=1)
        adapted = adapted.to(hidden.dtype)
        if prefix_index is not None:
            # the library takes the first rows of ``adapted[:, :prefix_positions]``: the prefix results
            rows = adapted[:, : self.prefix_positions][:, : prefix_index.shape[1]]
            hidden = torch.scatter(hidden, 1, prefix_index, rows)
        if suffix_index is not None:
            # the library takes the first rows of ``adapted[:, -suffix_positions:]``; on a sequence shorter than
            # suffix_positions these start inside the prefix results (its order, kept for parity)
            rows = adapted[:, -self.suffix_positions:][:, : suffix_index.shape[1]]
            hidden = torch.scatter(hidden, 1, suffix_index, rows)
        return hidden
