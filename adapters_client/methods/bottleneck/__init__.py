"""Bottleneck adapters (seq_bn, double_seq_bn, par_bn) and AdapterFusion."""

from .layer import BottleneckLayer
from .modules import BottleneckAdapter, FusionLayer

__all__ = ["BottleneckAdapter", "BottleneckLayer", "FusionLayer", "inject"]


def inject(engine) -> list:
    """One site per bottleneck position (``spec.sites``) of every layer (the registry's attach point)."""
    return [BottleneckLayer(engine, layer, idx, site)
            for idx, layer in enumerate(engine.layers()) for site in engine.bottleneck_sites_of(idx)]
