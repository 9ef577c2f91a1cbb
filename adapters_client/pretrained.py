"""Saving a whole AdapterModel (backbone, adapters, fusions, heads, active setup) and loading it back."""

from __future__ import annotations

import json
from pathlib import Path

from .composition import setup_from_dict, setup_to_dict
from .configs.methods import is_adapter_key
from .methods.lora.mtl import shares_of

SETUP_FILE = "adapter_setup.json"


def save_pretrained(model, save_directory, **kwargs) -> None:
    """Backbone via HF ``save_pretrained`` (without adapter weights), then one folder per adapter/fusion/head."""
    root = Path(save_directory)
    root.mkdir(parents=True, exist_ok=True)
    # the registry's segments (the ones save_adapter/load_adapter use) tell adapter weights from the backbone
    base_state = {k: v for k, v in model.base_model.state_dict().items() if not is_adapter_key(k)}
    model.base_model.save_pretrained(str(root), state_dict=base_state, **kwargs)
    engine = model.adapter_engine
    for name in engine.configs:
        model.save_adapter(str(root / "adapters" / name), name, with_head=True)
    for name in engine.fusions:
        model.save_adapter_fusion(str(root / "adapter_fusions" / name), name, with_head=True)
    heads = getattr(model, "heads", None) or {}
    for name in heads:
        if name not in engine.configs and name not in engine.fusions:
            model.save_head(str(root / "heads" / name), name)
    setup = {"adapter_setup": setup_to_dict(engine.active_setup) if engine.active_setup is not None else None,
             "skip_layers": engine.skip_layers, "head_setup": getattr(model, "active_head", None)}
    shares = shares_of(engine)
    if shares:  # MTL-LoRA adapters sharing A and B: each folder holds the values, this file the ties
        setup["shared_parameters"] = shares
    (root / SETUP_FILE).write_text(json.dumps(setup, indent=2), encoding="utf-8")
    if "_generation_config" in model.__dict__:  # set or used (generate): reloaded by from_pretrained
        model.generation_config.save_pretrained(str(root))


def restore_saved_parts(model, directory) -> None:
    """Load what ``save_pretrained`` wrote next to the backbone (nothing happens for a plain HF folder)."""
    root = Path(directory)
    if not (root / SETUP_FILE).is_file():
        return
    for folder in sorted((root / "adapters").glob("*/")) if (root / "adapters").is_dir() else []:
        model.load_adapter(str(folder))
    for folder in sorted((root / "adapter_fusions").glob("*/")) if (root / "adapter_fusions").is_dir() else []:
        model.load_adapter_fusion(str(folder), with_head=True)
    for folder in sorted((root / "heads").glob("*/")) if (root / "heads").is_dir() else []:
        model.load_head(str(folder))
    setup = json.loads((root / SETUP_FILE).read_text(encoding="utf-8"))
    for share, members in (setup.get("shared_parameters") or {}).items():
        model.share_parameters(members, name=share)  # equal values were loaded: tie them again
    if setup.get("adapter_setup"):
        model.set_active_adapters(setup_from_dict(setup["adapter_setup"]), skip_layers=setup.get("skip_layers"))
    if setup.get("head_setup") is not None and hasattr(type(model), "active_head"):
        model.active_head = setup["head_setup"]
