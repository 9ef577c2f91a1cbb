"""ReFT (LoReFT, NoReFT, DiReFT): interventions on each layer's output at the rows' first/last attended tokens."""

from __future__ import annotations

import inspect

from ...hooks import pick_parameter
from .layer import CACHED_KEY, MASK_KEY, OWNER_KEY, ReftContainer, ReftLayer
from .modules import ReftModule, ReftUnit

__all__ = ["ReftContainer", "ReftLayer", "ReftModelParts", "ReftModule", "ReftUnit", "inject"]

_CACHE_ARGUMENTS = ("past_key_values", "past_key_value", "cache")


def inject(engine) -> list:
    """One site per transformer layer (``spec.layers``), hooked on the layer's output."""
    spec = engine.spec
    path = getattr(engine, "layer_path", None)  # encoder-decoder rows number the decoder's layers on
    return [ReftLayer(engine, layer, idx, path=path(idx) if path else f"{spec.layers}.{idx}")
            for idx, layer in enumerate(engine.layers())]


class ReftModelParts:
    """Model-wide part of the ReFT method: hands each forward's attention mask to the sites.

    The library reads the rows' offsets and lengths from the attention mask the model was called with; the
    engine calls ``before_forward`` with the base model's arguments, where the mask is looked up by name (or by
    its position in the installed ``transformers``' signature). Holds no modules.
    """

    def __init__(self, engine):
        self.engine = engine
        base = engine.base_model
        pick_parameter(base, ("attention_mask",), engine.spec.model_type, "",
                       "the attention mask ReFT reads its positions from")
        self._mask_index = list(inspect.signature(base.forward).parameters).index("attention_mask")
        # the last forward's mask and cache flag: a layer recomputed by gradient checkpointing in backward runs
        # outside its forward's context and reads them here
        self.last_forward: dict = {}

    def add(self, name: str, config) -> None:
        return None

    def delete(self, name: str) -> None:
        return None

    def modules_of(self, name: str) -> list:
        return []

    def before_save(self, name: str) -> None:
        return None

    def expected_sites(self) -> dict:
        return {}

    def before_forward(self, args, kwargs, forward):
        if not any(len(site.adapters) for site in self.engine.layer_sites.get("reft", ())):
            return None
        mask = kwargs.get("attention_mask")
        if mask is None and len(args) > self._mask_index:
            mask = args[self._mask_index]
        cached = any(_filled(kwargs.get(name)) for name in _CACHE_ARGUMENTS)
        forward.extras[MASK_KEY] = mask
        forward.extras[CACHED_KEY] = cached
        self.last_forward = {MASK_KEY: mask, CACHED_KEY: cached}
        forward.extras[OWNER_KEY] = self
        return None


def _filled(cache) -> bool:
    """True for a key/value cache that already holds positions (a decoding step after the first)."""
    if cache is None:
        return False
    length = getattr(cache, "get_seq_length", None)
    if callable(length):
        try:
            return int(length()) > 0
        except Exception:  # noqa: BLE001 - a cache type that cannot tell: judge by its content below
            pass
    if isinstance(cache, (tuple, list)):
        return len(cache) > 0
    return False
