"""Invertible adapters (``inv_adapter``) and the other model-level parts of bottleneck adapters (shared PHM)."""

from .blocks import SUPPORTED_BLOCKS, NICECouplingBlock, build_block
from .model_parts import BottleneckModelParts, inverse_for_heads

__all__ = ["SUPPORTED_BLOCKS", "BottleneckModelParts", "NICECouplingBlock", "build_block", "inverse_for_heads"]
