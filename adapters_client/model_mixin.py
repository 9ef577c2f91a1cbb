"""The user-facing adapter methods (same names and arguments as the adapters library's model mixin)."""

from __future__ import annotations

from typing import Optional

import torch

from .composition import AdapterCompositionBlock, Fuse, parse_composition
from .configs import is_adapter_key
from .engine import AdapterEngine
from .errors import InvalidAdapterConfig, InvalidComposition


class ModelAdaptersMixin:
    """Mixed into AdapterModel and into plain HF models by ``adapters_client.init``."""

    # --- plumbing ---
    def _init_adapter_engine(self) -> None:
        engine = self.__dict__["_adapter_engine"] = AdapterEngine(self.base_model)
        # an HF class may keep its base model under another attribute than the row's (Qwen2ForQuestionAnswering:
        # ``transformer``); the adapters library's files from it carry that prefix, and so do ours
        prefix = getattr(self, "base_model_prefix", None)
        if isinstance(prefix, str) and prefix and getattr(self, prefix, None) is self.base_model:
            engine.weights_prefix = prefix

    @property
    def adapter_engine(self) -> AdapterEngine:
        return self.__dict__["_adapter_engine"]

    @property
    def adapters_config(self) -> dict:
        """Adapter name -> method config."""
        return dict(self.adapter_engine.configs)

    def has_adapter(self, name: str) -> bool:
        return name in self.adapter_engine.configs

    # --- adding, deleting, activating ---
    def add_adapter(self, adapter_name: str, config=None, overwrite_ok: bool = False, set_active: bool = False):
        """Add a new adapter (``config``: a config, dict, name or ``name[k=v]``; default seq_bn)."""
        self.adapter_engine.add(adapter_name, config if config is not None else "seq_bn", overwrite_ok)
        if set_active:
            self.set_active_adapters(adapter_name)

    def delete_adapter(self, adapter_name: str) -> None:
        self.adapter_engine.delete(adapter_name)

    def set_active_adapters(self, adapter_setup, skip_layers: Optional[list] = None) -> None:
        """Activate a name or a composition block for every following forward pass (None deactivates)."""
        block = self.adapter_engine.set_active(adapter_setup, skip_layers)
        self._activate_matching_head(block)

    @property
    def active_adapters(self) -> Optional[AdapterCompositionBlock]:
        return self.adapter_engine.active_setup

    @active_adapters.setter
    def active_adapters(self, adapter_setup) -> None:
        self.set_active_adapters(adapter_setup)

    def _activate_matching_head(self, block) -> None:
        """Like the adapters library: a setup also activates the heads named after its adapters."""
        heads = getattr(self, "heads", None)
        if block is None or heads is None or not hasattr(type(self), "active_head"):
            return
        try:
            from .heads import head_setup_for
        except ImportError:  # pragma: no cover - heads not available
            return
        head_setup = head_setup_for(block, heads)
        if head_setup is not None:
            self.active_head = head_setup

    # --- training ---
    def freeze_model(self, freeze: bool = True) -> None:
        """Freeze (or unfreeze) every weight of the base model, adapters included."""
        for param in self.base_model.parameters():
            param.requires_grad = not freeze

    def train_adapter(self, adapter_setup, train_embeddings: bool = False) -> None:
        """Training mode with everything frozen except the given adapters (and heads of the same names)."""
        block = parse_composition(adapter_setup)
        self.set_active_adapters(block)
        self.train()
        self.freeze_model(True)
        for name in block.flatten():
            for module in self.adapter_engine.modules_of(name):
                for param in module.parameters():
                    param.requires_grad = True
        self._freeze_other_heads(block.flatten())
        if train_embeddings:
            for param in self.base_model.get_input_embeddings().parameters():
                param.requires_grad = True

    def train_adapter_fusion(self, adapter_setup, unfreeze_adapters: bool = False) -> None:
        """Training mode for the fusion layers of ``adapter_setup`` (optionally the adapters too)."""
        block = parse_composition(adapter_setup)
        self.set_active_adapters(block)
        self.train()
        self.freeze_model(True)
        for fuse in _fuse_blocks(block):
            for module in self.adapter_engine.fusion_modules(fuse.name):
                for param in module.parameters():
                    param.requires_grad = True
        if unfreeze_adapters:
            for name in block.flatten():
                for module in self.adapter_engine.modules_of(name):
                    for param in module.parameters():
                        param.requires_grad = True
        self._freeze_other_heads(block.flatten() | {f.name for f in _fuse_blocks(block)})

    def _freeze_other_heads(self, keep: set) -> None:
        heads = getattr(self, "heads", None)
        if heads is None:
            return
        for name, head in heads.items():
            for param in head.parameters():
                param.requires_grad = name in keep

    # --- fusion ---
    def add_adapter_fusion(self, adapter_names, config=None, overwrite_ok: bool = False, set_active: bool = False):
        """Add a fusion layer over ``Fuse(...)`` (config "dynamic" by default, or "static", a dict...)."""
        block = adapter_names if isinstance(adapter_names, Fuse) else Fuse(*adapter_names)
        if overwrite_ok and block.name in self.adapter_engine.fusions:
            self.adapter_engine.delete_fusion(block.name)
        self.adapter_engine.add_fusion(block, config)
        if set_active:
            self.set_active_adapters(block)

    def delete_adapter_fusion(self, adapter_names) -> None:
        name = _fusion_name(adapter_names)
        self.adapter_engine.delete_fusion(name)

    # --- MTL-LoRA: parameters shared by the adapters of a MultiTask block (methods/lora/mtl.py) ---
    def share_parameters(self, adapter_names, name: Optional[str] = None,
                         reference_adapter_name: Optional[str] = None) -> None:
        """The MTL-LoRA adapters ``adapter_names`` (MultiTask, list or "a,b") share ``reference_adapter_name``'s
        (default: the first one's) A and B, kept under ``shared_parameters.<name>`` (default "a,b")."""
        from .methods.lora.mtl import share_parameters

        share_parameters(self.adapter_engine, adapter_names, name, reference_adapter_name)

    def unshare_parameters(self, adapter_names, name: Optional[str] = None) -> None:
        """End a share: each adapter keeps its own copy of the (equal) A and B."""
        from .methods.lora.mtl import unshare_parameters

        unshare_parameters(self.adapter_engine, adapter_names, name)

    # --- LoRA merging, averaging ---
    def merge_adapter(self, name: str) -> None:
        """Fold LoRA/(IA)^3 adapter ``name`` into the base weights (forward stays the same, faster)."""
        config = self.adapter_engine.configs.get(name)
        if config is None or config.family != "lora":
            raise InvalidAdapterConfig(f"{name!r} is not a LoRA adapter of this model", field="name")
        for layer in self.adapter_engine.lora_layers:
            layer.merge(name)

    def reset_adapter(self) -> None:
        """Undo ``merge_adapter``."""
        for layer in self.adapter_engine.lora_layers:
            layer.reset()

    def average_adapter(self, adapter_name: str, adapter_list, weights: Optional[list] = None,
                        normalize_weights: bool = True, overwrite_ok: bool = False, set_active: bool = False,
                        combine_strategy: str = "linear") -> None:
        """A new adapter whose weights are the weighted average of ``adapter_list``'s (same config)."""
        engine = self.adapter_engine
        names = list(adapter_list)
        if not names or any(n not in engine.configs for n in names):
            raise InvalidAdapterConfig(f"average_adapter needs existing adapters, got {names!r}", field="adapter_list")
        if combine_strategy != "linear":
            raise InvalidAdapterConfig(f"combine_strategy {combine_strategy!r} is not supported",
                                       field="combine_strategy")
        config = engine.configs[names[0]]
        if any(engine.configs[n] != config for n in names):
            raise InvalidAdapterConfig("averaged adapters must share one configuration", field="adapter_list")
        weights = list(weights) if weights is not None else [1.0 / len(names)] * len(names)
        if len(weights) != len(names):
            raise InvalidAdapterConfig("one weight per adapter is needed", field="weights")
        if normalize_weights:
            total = sum(weights)
            weights = [w / total for w in weights]
        engine.add(adapter_name, config, overwrite_ok)
        sources = [engine.modules_of(n) for n in names]
        with torch.no_grad():
            for i, target in enumerate(engine.modules_of(adapter_name)):
                averaged = {}
                for weight, modules in zip(weights, sources):
                    for key, value in modules[i].state_dict().items():
                        averaged[key] = averaged.get(key, 0) + weight * value
                target.load_state_dict(averaged)
        if set_active:
            self.set_active_adapters(adapter_name)

    def adapter_summary(self, as_dict: bool = False):
        """A table (or list of dicts) of the adapters: method, parameters, share of the backbone, active, train."""
        from .configs import method_name

        engine = self.adapter_engine
        backbone = sum(p.numel() for n, p in self.base_model.named_parameters() if not is_adapter_key(n))
        active = engine.active_setup.flatten() if engine.active_setup is not None else set()
        rows = []
        for name, config in engine.configs.items():
            params = [p for m in engine.modules_of(name) for p in m.parameters()]
            count = sum(p.numel() for p in params)
            rows.append({"name": name, "architecture": method_name(config), "#param": count,
                         "%param": 100.0 * count / max(backbone, 1), "active": name in active,
                         "train": any(p.requires_grad for p in params)})
        if as_dict:
            return rows
        lines = [f"{'Name':<20}{'Architecture':<16}{'#Param':>10}{'%Param':>10}  Active  Train"]
        for row in rows:
            lines.append(f"{row['name']:<20}{row['architecture']:<16}{row['#param']:>10}{row['%param']:>10.3f}"
                         f"  {str(row['active']):<6}  {row['train']}")
        return "\n".join(lines)

    def get_adapter(self, name: str) -> list:
        """The modules of adapter ``name``."""
        return self.adapter_engine.modules_of(name)

    # --- saving and loading (adapters_client.formats) ---
    def save_adapter(self, save_directory, adapter_name: str, with_head: bool = True) -> None:
        from .formats import save_adapter

        save_adapter(self, save_directory, adapter_name, with_head=with_head)

    def save_all_adapters(self, save_directory, with_head: bool = True) -> None:
        from .formats import save_all_adapters

        save_all_adapters(self, save_directory, with_head=with_head)

    def load_adapter(self, adapter_name_or_path, load_as: Optional[str] = None, with_head: bool = True,
                     set_active: bool = False, allow_pickle: bool = False, leave_out: Optional[list] = None,
                     **kwargs) -> str:
        """Load an adapter from a folder, a hub identifier or a HF repo id (see ``formats.load_adapter``)."""
        from .formats import load_adapter

        return load_adapter(self, adapter_name_or_path, load_as=load_as, with_head=with_head,
                            set_active=set_active, allow_pickle=allow_pickle, leave_out=leave_out, **kwargs)

    def save_adapter_fusion(self, save_directory, adapter_names, with_head: bool = False) -> None:
        from .formats import save_adapter_fusion

        save_adapter_fusion(self, save_directory, _fusion_name(adapter_names), with_head=with_head)

    def save_all_adapter_fusions(self, save_directory) -> None:
        import os

        for name in self.adapter_engine.fusions:
            self.save_adapter_fusion(os.path.join(save_directory, name), name)

    def load_adapter_fusion(self, path, load_as: Optional[str] = None, set_active: bool = False,
                            with_head: bool = False) -> str:
        from .formats import load_adapter_fusion

        return load_adapter_fusion(self, path, load_as=load_as, set_active=set_active, with_head=with_head)


def _fusion_name(adapter_names) -> str:
    if isinstance(adapter_names, Fuse):
        return adapter_names.name
    if isinstance(adapter_names, str):
        return adapter_names
    if isinstance(adapter_names, (list, tuple)):
        return ",".join(adapter_names)
    raise InvalidComposition(f"cannot name a fusion from {adapter_names!r}")


def _fuse_blocks(block) -> list:
    found = [block] if isinstance(block, Fuse) else []
    if isinstance(block, AdapterCompositionBlock):
        for child in block:
            found += _fuse_blocks(child)
    return found
