"""Bottleneck adapters (seq_bn, double_seq_bn, par_bn) and AdapterFusion."""

from .layer import BottleneckLayer
from .modules import BottleneckAdapter, FusionLayer

__all__ = ["BottleneckAdapter", "BottleneckLayer", "FusionLayer"]
