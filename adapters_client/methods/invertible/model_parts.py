"""The model-level parts of bottleneck adapters: invertible blocks and shared PHM parameters.

- ``<base>.invertible_adapters.<name>``: the coupling block of an adapter with ``inv_adapter`` set. It runs on the
  embedding output (the architecture row's ``embedding_output``: ``embeddings``, GPT-2 ``drop``) for the first
  adapter of the active setup, as the adapters library does (Stack, Fuse, Parallel, BatchSplit, Average: the
  block of ``setup.first()``; none when that adapter has none). Its inverse runs in LM heads before the
  vocabulary projection (``heads/mixin.py`` hands it to every head; only LM heads use it).
- ``<base>.shared_parameters.<name>``: the PHM rule (``shared_phm_rule``) and/or W (``shared_W_phm``) that every
  PHM layer of a Compacter adapter shares (``methods/bottleneck/phm.py``).

One object per model (an engine extension), created with the bottleneck sites; the engine adds to it after the
per-layer modules of each adapter (``methods/registry.py: add_model_parts``).
"""

from __future__ import annotations

from typing import Optional

import torch
from torch import nn

from ...architectures import get_path
from ...composition import AdapterCompositionBlock
from ...configs import BnConfig, config_parts
from ...errors import HookNotRun, InvalidAdapterConfig, InvalidComposition
from ...hooks import note_ran
from ..registry import parts_key
from ..bottleneck.phm import PHMLayer, check_phm_config, shared_phm_parameters
from .blocks import build_block

INVERTIBLE_SEGMENT = "invertible_adapters"
SHARED_SEGMENT = "shared_parameters"


def _first(setup) -> Optional[str]:
    if setup is None:
        return None
    return setup.first() if isinstance(setup, AdapterCompositionBlock) else setup


class BottleneckModelParts:
    """Engine extension: ``add``, ``delete``, ``modules_of``, ``before_forward``, ``before_save``, ``expected_sites``."""

    def __init__(self, engine):
        self.engine = engine
        self.embedding_path: Optional[str] = None  # set when the embedding hook is registered (first inv adapter)

    # --- the ModuleDicts, attached to the base model on first use (their names are the library's keys) ---
    def _host(self, attr: str) -> nn.Module:
        """The module carrying ``attr``: invertible blocks sit on the row's ``invertible_host`` (BART: the
        encoder, as in the library), shared PHM parameters on the base model."""
        host = self.engine.spec.invertible_host if attr == INVERTIBLE_SEGMENT else ""
        return get_path(self.engine.base_model, host, self.engine.spec.model_type)

    def _dict(self, attr: str) -> nn.ModuleDict:
        base = self._host(attr)
        found = getattr(base, attr, None)
        if found is None:
            found = nn.ModuleDict()
            base.add_module(attr, found)
        return found

    @property
    def blocks(self) -> dict:
        return getattr(self._host(INVERTIBLE_SEGMENT), INVERTIBLE_SEGMENT, None) or {}

    @property
    def shared(self) -> dict:
        return getattr(self.engine.base_model, SHARED_SEGMENT, None) or {}

    # --- adapters ---
    def add(self, name: str, config) -> None:
        if not isinstance(config, BnConfig):
            return
        if config.inv_adapter and self.engine.spec.embedding_output is None:  # the row has no embedding hook
            raise InvalidAdapterConfig(f"invertible adapters are not supported for {self.engine.spec.model_type} yet",
                                       field="inv_adapter")
        ref = self.engine._reference_param()
        hidden = self.engine.hidden_size
        if config.phm_layer and (config.shared_phm_rule or config.shared_W_phm):
            numeric = isinstance(config.reduction_factor, (int, float))
            check_phm_config(config, hidden, int(hidden // config.reduction_factor) if numeric else config.phm_dim)
            params = shared_phm_parameters(config, hidden).to(device=ref.device, dtype=ref.dtype)
            params.train(self.engine.base_model.training)
            self._dict(SHARED_SEGMENT)[name] = params
            self._bind(name, params)
        if config.inv_adapter:
            block = build_block(config, self._embedding_width()).to(device=ref.device, dtype=ref.dtype)
            self._hook_embeddings()
            block.train(self.engine.base_model.training)
            self._dict(INVERTIBLE_SEGMENT)[name] = block

    def _bind(self, name: str, params: nn.ParameterDict) -> None:
        """Hand the shared parameters to every PHM layer of adapter ``name`` (they are not their submodules)."""
        for site in self.engine.layer_sites.get("bottleneck", []):
            if name in site.adapters:
                for module in site.adapters[name].modules():
                    if isinstance(module, PHMLayer) and module.needs_shared:
                        module.bind_shared(params)

    def _embedding_width(self) -> int:
        """The embedding output's width: ``embedding_size`` where the config has it (as the library), else hidden."""
        width = getattr(self.engine.model_config, "embedding_size", None)
        return width if isinstance(width, int) else self.engine.hidden_size

    def _hook_embeddings(self) -> None:
        if self.embedding_path is not None:
            return
        spec = self.engine.spec
        path = spec.embedding_output
        get_path(self.engine.base_model, path, spec.model_type).register_forward_hook(self._on_embeddings)
        self.embedding_path = path

    def _mine(self, name: str) -> bool:
        # shared_parameters also holds other methods' entries (VeRA): answer for bottleneck adapters only
        config = self.engine.configs.get(name)
        return config is not None and any(isinstance(part, BnConfig) for part in config_parts(config))

    def delete(self, name: str) -> None:
        if not self._mine(name):
            return
        for attr in (INVERTIBLE_SEGMENT, SHARED_SEGMENT):
            found = getattr(self._host(attr), attr, None)
            if found is not None and name in found:
                del found[name]

    def modules_of(self, name: str) -> list:
        if not self._mine(name):
            return []
        return [parts[name] for parts in (self.blocks, self.shared) if name in parts]

    def before_save(self, name: str) -> None:
        return None

    def before_forward(self, args, kwargs, forward):
        return None

    # --- the invertible block of the active setup ---
    def active_block_name(self) -> Optional[str]:
        blocks = self.blocks
        if not blocks:
            return None
        setup, _ = self.engine.current_setup()
        if type(setup).__name__ == "MixedRows":  # a mixed-adapter batch (context.py): one block per row is not
            held = [n for n in setup.flatten() if n in blocks]  # what LM heads could invert: refused
            if held:
                raise InvalidComposition(f"adapter {held[0]!r} has an invertible adapter (inv_adapter); it "
                                         f"cannot share a mixed-adapter batch (adapter_names)")
            return None
        first = _first(setup)
        return first if first in blocks else None

    def inverse_for_heads(self) -> Optional[nn.Module]:
        """The block whose inverse LM heads apply (``block(hidden, rev=True)``), or None."""
        name = self.active_block_name()
        return self.blocks[name] if name is not None else None

    def expected_sites(self) -> dict:
        if self.active_block_name() is None:
            return {}
        return {("invertible", id(self)): f"{self.embedding_path} (invertible adapter)"}

    def _on_embeddings(self, module, args, output):
        name = self.active_block_name()
        if name is None:
            return None
        if not isinstance(output, torch.Tensor):
            raise HookNotRun(f"{self.engine.spec.model_type}: {self.embedding_path} returned "
                             f"{type(output).__name__}, not the embedding tensor the invertible adapter transforms",
                             module=self.embedding_path)
        note_ran(("invertible", id(self)))
        return self.blocks[name](output)


def inverse_for_heads(model) -> Optional[nn.Module]:
    """For ``heads/``: the invertible block of the active setup of ``model`` (None: nothing to invert)."""
    engine = getattr(model, "adapter_engine", None)
    parts = engine.extensions.get(parts_key("bottleneck")) if engine is not None else None
    return parts.inverse_for_heads() if parts is not None else None
