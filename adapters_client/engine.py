"""The adapter engine of one model: per-layer method objects, the registry of adapters, the active setup."""

from __future__ import annotations

import functools
from typing import Optional

import torch
from torch import nn

from .architectures import ArchSpec, get_path, get_spec
from .composition import AdapterCompositionBlock, Fuse, Stack, parse_composition
from .configs import BnConfig, MethodConfig, load_config
from .configs.methods import registered_methods
from .configs.union import config_parts, parts_by_method
from .context import _NO_OVERRIDE, AdapterSetup, MixedRows, RowAdapters, row_override
from .engine_forward import ForwardMachinery
from .errors import AdapterNameNotFound, IncompatibleAdapter, InvalidAdapterConfig, InvalidComposition
from .methods.registry import add_model_parts, extension_for, sites_for


class AdapterEngine(ForwardMachinery):
    """Injects method layers around a Hugging Face base model's modules and tracks adapters and setups."""

    def __init__(self, base_model: nn.Module):
        self.base_model = base_model
        self.model_config = base_model.config
        self.spec: ArchSpec = get_spec(base_model.config.model_type)
        self.hidden_size = getattr(self.model_config, self.spec.hidden_size_attr)
        self.configs: dict[str, MethodConfig] = {}
        self.fusions: dict[str, tuple] = {}  # name -> (fusion config, adapter names)
        self.active_setup: Optional[AdapterCompositionBlock] = None
        self.skip_layers: Optional[list] = None
        # method name -> that per-layer method's sites (objects holding its modules at each layer), and
        # method name -> model-level method object (prefix, prompt); both filled from the method registry
        self.layer_sites: dict[str, list] = {}
        self.extensions: dict[str, object] = {}
        self._flat_cache: dict = {}
        self._generation = 0  # bumped whenever adapters or fusions change: setups are audited again
        self._audited: set = set()  # setups whose first forward showed every site running
        # Parallel: replicate the batch at the first layer the setup concerns (False: always at the input)
        self._replicate_at_layers = True
        self._single_setups: dict = {}  # name -> Stack(name): the setup one group of a mixed batch runs with
        # the base model's attribute in the model that holds it: the first part of every saved key (the row's
        # ``base_prefix`` unless the wrapping class names it otherwise, e.g. ``transformer`` in
        # ``Qwen2ForQuestionAnswering``: set by ``init()``)
        self.weights_prefix: str = self.spec.base_prefix
        self._inject()

    # --- injection ---
    def _inject(self) -> None:
        for idx, layer in enumerate(self.layers()):
            # registered first: the layer's own hooks (residual capture) see the replicated batch
            layer.register_forward_pre_hook(functools.partial(self._before_layer, idx), with_kwargs=True)
        for method in registered_methods():  # per-layer methods attach now: missing hook targets fail here
            if method.scope == "layer":
                sites_for(self, method)
        self.base_model.register_forward_pre_hook(self._before_base_forward, with_kwargs=True)
        # always_call: the context the pre-hook opened is closed when the forward raises too (else a later call
        # of the base model, or an AdapterModel.forward restoring it on exit, would see that dead forward's state)
        self.base_model.register_forward_hook(self._after_base_forward, always_call=True)

    def layers(self):
        """The base model's transformer layers (``spec.layers``); encoder-decoder models: the encoder's, then
        the decoder's (``spec.decoder_layers``), numbered on as the library does."""
        layers = get_path(self.base_model, self.spec.layers, self.spec.model_type)
        if self.spec.decoder_layers is None:
            return layers
        return list(layers) + list(get_path(self.base_model, self.spec.decoder_layers, self.spec.model_type))

    @functools.cached_property
    def num_encoder_layers(self) -> int:
        """Layers before the decoder's (all of them for models without a decoder list)."""
        return len(get_path(self.base_model, self.spec.layers, self.spec.model_type))

    def is_decoder_layer(self, layer_idx: int) -> bool:
        return self.spec.decoder_layers is not None and layer_idx >= self.num_encoder_layers

    def layer_path(self, layer_idx: int) -> str:
        """Path from the base model to layer ``layer_idx`` (in the library's numbering), for messages and keys."""
        if self.is_decoder_layer(layer_idx):
            return f"{self.spec.decoder_layers}.{layer_idx - self.num_encoder_layers}"
        return f"{self.spec.layers}.{layer_idx}"

    def bottleneck_sites_of(self, layer_idx: int) -> tuple:
        """The BottleneckSite rows of layer ``layer_idx`` (a decoder layer's own, with cross-attention)."""
        return self.spec.decoder_sites if self.is_decoder_layer(layer_idx) else self.spec.sites

    @property
    def num_layers(self) -> int:
        return len(self.layers())

    @property
    def bottleneck_layers(self) -> list:
        return self.layer_sites.get("bottleneck", [])

    @property
    def lora_layers(self) -> list:
        return self.layer_sites.get("lora", [])

    def all_sites(self) -> list:
        """Every per-layer site of every per-layer method, in registration order."""
        return [site for sites in self.layer_sites.values() for site in sites]

    @property
    def read_prefixes(self) -> tuple:
        """The key prefixes a loaded file may carry: this model's, and the row's (files from its AdapterModel)."""
        return tuple(dict.fromkeys((self.weights_prefix, self.spec.base_prefix)))

    def _reference_param(self) -> torch.Tensor:
        return next(self.base_model.parameters())

    # --- adapters ---
    def add(self, name: str, config, overwrite_ok: bool = False) -> MethodConfig:
        _check_name(name)
        config = load_config(config)
        if name in self.configs:
            if not overwrite_ok:
                raise InvalidAdapterConfig(f"an adapter named {name!r} already exists", field="name")
            self.delete(name)
        for idx in (i for part in config_parts(config) for i in (part.get("leave_out", []) or [])):
            if idx >= self.num_layers:
                raise InvalidAdapterConfig(f"leave_out names layer {idx} but the model has {self.num_layers}",
                                           field="leave_out")
        self.configs[name] = config
        self._generation += 1
        try:
            self._add_modules(name, config)
        except Exception:
            self.delete(name)
            raise
        return config

    def _add_modules(self, name: str, config: MethodConfig) -> None:
        # the registry (configs/methods.py); a config union (configs/union.py) adds each part under this name
        for method, parts in parts_by_method(config):
            if method.scope == "layer":
                ref = self._reference_param()
                for site in sites_for(self, method):
                    for part in parts:
                        held = name in site.adapters
                        if site.add(name, part):
                            if held:  # the library refuses a place two parts of one union claim
                                raise InvalidAdapterConfig(f"two {method.name} configs of the union {name!r} "
                                                           f"claim {site.path}", field="configs")
                            site.adapters[name].to(device=ref.device, dtype=ref.dtype)
                for part in parts:
                    add_model_parts(self, method, name, part)  # model-wide modules of a per-layer method
            else:
                extension_for(self, method).add(name, parts[0])
        self._set_mode(name, self.base_model.training)

    def delete(self, name: str) -> None:
        if name not in self.configs:
            raise AdapterNameNotFound(f"no adapter named {name!r}", field="name")
        for site in self.all_sites():
            if name in site.adapters:
                site.remove(name)
        for ext in self.extensions.values():
            ext.delete(name)
        del self.configs[name]
        self._generation += 1
        for fusion_name, (_, names) in list(self.fusions.items()):
            if name in names:
                self.delete_fusion(fusion_name)
        if self.active_setup is not None and name in self.active_setup.flatten():
            self.active_setup = None
        self._flat_cache.clear()

    def modules_of(self, name: str) -> list[nn.Module]:
        """Every module that belongs to adapter ``name``."""
        found = [site.adapters[name] for site in self.all_sites() if name in site.adapters]
        for ext in self.extensions.values():
            found += ext.modules_of(name)
        return found

    def _set_mode(self, name: str, training: bool) -> None:
        for module in self.modules_of(name):
            module.train(training)

    # --- fusion ---
    def add_fusion(self, block: Fuse, config) -> str:
        from .configs import load_fusion_config
        from .methods.bottleneck import FusionLayer

        if not isinstance(block, Fuse):
            block = Fuse(*block) if isinstance(block, (list, tuple)) else None
            if block is None:
                raise InvalidComposition("add_adapter_fusion needs a Fuse block or a list of adapter names")
        names = [c if isinstance(c, str) else c.last() for c in block]
        for adapter in names:
            if not isinstance(self.configs.get(adapter), BnConfig):
                raise InvalidComposition(f"fusion needs bottleneck adapters; {adapter!r} is not one")
        config = load_fusion_config(config)
        if block.name in self.fusions:
            raise InvalidComposition(f"a fusion named {block.name!r} already exists")
        dropout = config.dropout_prob or getattr(self.model_config, "attention_probs_dropout_prob", 0.0) or 0.0
        ref = self._reference_param()
        for layer in self.bottleneck_layers:
            if all(a in layer.adapters for a in names):
                fusion = FusionLayer(config, self.hidden_size, dropout).to(device=ref.device, dtype=ref.dtype)
                fusion.train(self.base_model.training)
                layer.fusion_layers[block.name] = fusion
        self.fusions[block.name] = (config, names)
        self._generation += 1
        return block.name

    def delete_fusion(self, name: str) -> None:
        if name not in self.fusions:
            raise InvalidComposition(f"no fusion named {name!r}")
        for layer in self.bottleneck_layers:
            if name in layer.fusion_layers:
                del layer.fusion_layers[name]
        del self.fusions[name]
        self._generation += 1

    def fusion_config(self, name: str):
        return self.fusions[name][0]

    def fusion_modules(self, name: str) -> list[nn.Module]:
        return [layer.fusion_layers[name] for layer in self.bottleneck_layers if name in layer.fusion_layers]

    # --- activation ---
    def set_active(self, setup, skip_layers=None) -> Optional[AdapterCompositionBlock]:
        block = parse_composition(setup)
        if block is not None:
            missing = sorted(block.flatten() - set(self.configs))
            if missing:
                raise InvalidComposition(f"no adapter named {missing[0]!r} in this model")
            self._check_fusions(block)
        self.active_setup = block
        self.skip_layers = list(skip_layers) if skip_layers is not None else None
        return block

    def _check_fusions(self, block) -> None:
        if isinstance(block, Fuse) and block.name not in self.fusions:
            raise InvalidComposition(f"no fusion layer {block.name!r}; call add_adapter_fusion first")
        if isinstance(block, AdapterCompositionBlock):
            for child in block:
                self._check_fusions(child)

    def current_setup(self):
        rows = row_override()  # a mixed batch (adapter_names) wins over AdapterSetup and the active setup
        if rows is not _NO_OVERRIDE:
            return rows, None
        override = AdapterSetup.current()
        if override is not None:
            skip = override.skip_layers if override.skip_layers is not None else self.skip_layers
            return override.adapter_setup, skip
        return self.active_setup, self.skip_layers

    def setup_for(self, layer):
        """The active setup if it concerns ``layer`` (not skipped, has one of its adapters), else None."""
        setup, skip = self.current_setup()
        if setup is None or (skip and layer.layer_idx in skip):
            return None
        flat = self._flat_cache.get(id(setup))
        if flat is None or flat[0] is not setup:
            if len(self._flat_cache) > 64:  # setups from AdapterSetup contexts come and go
                self._flat_cache.clear()
            flat = (setup, setup.flatten())
            self._flat_cache[id(setup)] = flat
        if flat[1].isdisjoint(layer.adapters.keys()):
            return None
        return setup

    # --- mixed-adapter batches ---
    def row_adapters(self, adapter_names, batch: int, training: bool) -> RowAdapters:
        """The per-row plan of ``model(..., adapter_names=[...])``: one adapter name, or None (no adapter),
        per row. Refused with typed errors: training mode, a list of the wrong length, an unknown name, a
        block instead of a name, a method that changes the sequence (prefix/prompt tuning), a merged LoRA."""
        if training:
            raise InvalidComposition("adapter_names (a mixed-adapter batch) is for inference only; call "
                                     "model.eval() first", field="adapter_names")
        if isinstance(adapter_names, (str, AdapterCompositionBlock)) or not isinstance(adapter_names, (list, tuple)):
            raise InvalidComposition(f"adapter_names must be a list with one adapter name (or None) per row, "
                                     f"got {type(adapter_names).__name__}", field="adapter_names")
        names = list(adapter_names)
        if len(names) != batch:
            raise InvalidComposition(f"adapter_names has {len(names)} entries but the batch has {batch} rows",
                                     field="adapter_names")
        for name in names:
            if name is None:
                continue
            if not isinstance(name, str):
                raise InvalidComposition(f"adapter_names entries must be adapter names or None (no adapter), "
                                         f"got {name!r}; composition blocks per row are not supported",
                                         field="adapter_names")
            config = self.configs.get(name)
            if config is None:
                raise AdapterNameNotFound(f"no adapter named {name!r} in this model", field="adapter_names")
            if any(method.scope != "layer" for method, _ in parts_by_method(config)):
                raise InvalidComposition(f"adapter {name!r} ({type(config).__name__}) changes the sequence or the "
                                         f"attention of its rows; it cannot share a mixed-adapter batch",
                                         field="adapter_names")
        merged = sorted({layer.merged for layer in self.lora_layers if layer.merged})
        if merged:
            raise InvalidComposition(f"LoRA {merged[0]!r} is merged into the base weights, which every row "
                                     f"would see; call reset_adapter() before using adapter_names",
                                     field="adapter_names")
        distinct = {n for n in names if n is not None}
        plan = RowAdapters(names, MixedRows(distinct) if distinct else None)
        for name in distinct:
            single = self._single_setups.get(name)
            if single is None:
                single = self._single_setups[name] = Stack(name)
            plan.singles[name] = single
        return plan


def _check_name(name) -> None:
    if not isinstance(name, str) or not name or any(c in name for c in ".,/ \t\n"):
        raise InvalidAdapterConfig(
            f"invalid adapter name {name!r}: use a non-empty name without '.', ',', '/' or spaces", field="name")


def check_model_compatible(engine: AdapterEngine, meta: dict) -> None:
    """IncompatibleAdapter when an adapter's metadata names another model type or hidden size."""
    model_type = meta.get("model_type")
    if model_type and model_type != engine.model_config.model_type:
        raise IncompatibleAdapter(
            f"adapter was trained for model type {model_type!r}, this model is {engine.model_config.model_type!r}",
            field="model_type")
    hidden = meta.get("hidden_size")
    if hidden is not None and hidden != engine.hidden_size:
        raise IncompatibleAdapter(f"adapter has hidden size {hidden}, this model has {engine.hidden_size}",
                                  field="hidden_size")
