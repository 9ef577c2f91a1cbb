"""Saving and loading adapters and fusion layers in the adapters library's folder format.

Weight keys are full state-dict keys as the adapters library names them (``bert.encoder.layer.0.output.adapters.
<name>.adapter_down.0.weight``); tensors shared by several keys (prefix tuning's pool) are written once.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Optional

import torch

from .configs import (
    ADAPTER_SEGMENTS, CONFIG_FILE, FUSION_CONFIG_FILE, FUSION_SEGMENT_NAMES, FUSION_WEIGHTS_FILE, HEAD_CONFIG_FILE,
    PICKLE_WEIGHTS_FILE, WEIGHTS_FILE, build_adapter_config_json, method_for_config, read_adapter_config_json,
    read_fusion_config_json,
)
from .configs.union import config_parts
from . import hub as hub_module  # torch-free: resolve/download/push (no import cycle)
from .engine import check_model_compatible
from .errors import (
    AdapterNameNotFound, AdapterNotFound, HubError, IncompatibleAdapter, InvalidAdapterConfig, OfflineCacheMiss,
)
from .weights import (
    expected_groups, match_state_dict, overwritten_init, read_weights, rename_keys, write_weights,
)

# the method registry's segment lists (configs/methods.py): the same objects whole-model saving uses
_ADAPTER_SEGMENTS = ADAPTER_SEGMENTS
_FUSION_SEGMENTS = FUSION_SEGMENT_NAMES
_SCRATCH = "__adapters_client_scratch__"


def _model_class(model) -> str:
    return getattr(model, "model_class_name", type(model).__name__)


def _model_name(model) -> Optional[str]:
    return getattr(model.config, "_name_or_path", None) or getattr(model.config, "name_or_path", None) or None


def _write_json(path: Path, data: dict) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=True), encoding="utf-8")


def _read_json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise IncompatibleAdapter(f"{path.name} is missing in {path.parent}", field=path.name) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise IncompatibleAdapter(f"{path.name} is not valid JSON: {exc}", field=path.name) from None


# --- adapters ---
def save_adapter(model, save_directory, adapter_name: str, with_head: bool = True) -> None:
    """Write adapter_config.json + adapter.safetensors (and the head of the same name) into a folder."""
    engine = model.adapter_engine
    if adapter_name not in engine.configs:
        raise AdapterNameNotFound(f"no adapter named {adapter_name!r}", field="name")
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta = build_adapter_config_json(engine.configs[adapter_name], adapter_name, model.config,
                                     model_class=_model_class(model), model_name=_model_name(model))
    meta["hidden_size"] = engine.hidden_size
    for ext in engine.extensions.values():
        ext.before_save(adapter_name)
    groups = expected_groups(engine, adapter_name, _ADAPTER_SEGMENTS)
    write_weights(folder / WEIGHTS_FILE, groups, engine.weights_prefix)
    _write_json(folder / CONFIG_FILE, meta)
    heads = getattr(model, "heads", None)
    if with_head and heads is not None and adapter_name in heads and hasattr(model, "save_head"):
        model.save_head(str(folder), adapter_name)


def save_all_adapters(model, save_directory, with_head: bool = True) -> None:
    """One sub-folder per adapter."""
    for name in list(model.adapter_engine.configs):
        save_adapter(model, os.path.join(save_directory, name), name, with_head=with_head)


def resolve_adapter_folder(adapter_name_or_path, model_name: Optional[str] = None, **kwargs) -> Path:
    """A local folder, a hub identifier (``task/subtask[@org]``) or a Hugging Face repo id -> local folder.

    - an existing folder is used as is; a path-like string (``/``, ``.``, ``~``) that is not a folder is an
      IncompatibleAdapter ("does not exist");
    - a string with ``@`` is a hub identifier: the hub (or the cache) only, never the Hugging Face Hub;
    - ``owner/name`` matching the identifier grammar goes to the hub first, and to the Hugging Face Hub
      only when the hub has no match (AdapterNotFound, an offline cache miss, or no hub reachable while
      ``ADAPTERS_HUB_URL`` is unset); when both fail, the hub's error is raised;
    - any other ``owner/name`` (e.g. with capitals) is a Hugging Face repo id.
    Hub errors (HubError, ChecksumMismatch, OfflineCacheMiss, AdapterNotFound, AmbiguousIdentifier) reach
    the caller unchanged.
    """
    from .identifiers import looks_like_identifier

    path = Path(os.fspath(adapter_name_or_path)).expanduser()
    if path.is_dir():
        return path
    text = str(adapter_name_or_path)
    if path.exists() or text.startswith((".", "/", "~")) or ("@" not in text and text.count("/") != 1):
        raise IncompatibleAdapter(f"adapter folder {text!r} does not exist", field="path")
    if "@" in text:
        return _from_hub(text, model_name, **kwargs)
    if not looks_like_identifier(text):
        return _from_hf(text, model_name, **kwargs)
    try:
        return _from_hub(text, model_name, **kwargs)
    except (AdapterNotFound, OfflineCacheMiss, HubError) as exc:
        if isinstance(exc, HubError) and (exc.status is not None or os.environ.get("ADAPTERS_HUB_URL")):
            raise
        try:
            return _from_hf(text, model_name, **kwargs)
        except Exception:
            raise exc from None


def _from_hub(identifier: str, model_name: Optional[str], **kwargs) -> Path:
    """adapter hub (the model's own name is a backbone filter only when it is a public name)"""
    from .publish import is_local_path

    allowed = {k: v for k, v in kwargs.items() if k in ("config", "version", "cache_dir", "hub")}
    if is_local_path(model_name):
        model_name = None
    return Path(hub_module.download(identifier, model_name=model_name, **allowed))


def _from_hf(repo_id: str, model_name: Optional[str], **kwargs) -> Path:
    """Hugging Face Hub; its failures become AdapterNotFound (offline: OfflineCacheMiss)"""
    from huggingface_hub import snapshot_download
    from huggingface_hub.errors import LocalEntryNotFoundError

    allowed = {k: v for k, v in kwargs.items() if k in ("revision", "cache_dir")}
    try:
        return Path(snapshot_download(repo_id=repo_id, **allowed))
    except LocalEntryNotFoundError as exc:
        raise OfflineCacheMiss(f"{repo_id!r} is not in the Hugging Face cache: {exc}", field="path") from exc
    except Exception as exc:
        raise AdapterNotFound(f"cannot find adapter {repo_id!r} on the Hugging Face Hub: {exc}",
                              field="path") from exc


def load_adapter(model, adapter_name_or_path, load_as: Optional[str] = None, with_head: bool = True,
                 set_active: bool = False, allow_pickle: bool = False, leave_out: Optional[list] = None,
                 **kwargs) -> str:
    """Add the adapter stored in a folder (or downloaded) to ``model``; returns its name in the model.

    ``leave_out``: layers whose weights are dropped after loading (AdapterDrop; bottleneck and LoRA).
    """
    engine = model.adapter_engine
    folder = resolve_adapter_folder(adapter_name_or_path, model_name=_model_name(model), **kwargs)
    config, meta = read_adapter_config_json(_read_json(folder / CONFIG_FILE))
    check_model_compatible(engine, meta)
    state = read_weights(folder, WEIGHTS_FILE, PICKLE_WEIGHTS_FILE, allow_pickle)
    if leave_out:
        config, state = _drop_layers(engine, config, state, leave_out)
    name = load_as or meta["name"]
    state = rename_keys(_canonical_aliases(state, engine.weights_prefix), meta["name"], name,
                        _ADAPTER_SEGMENTS)
    if name in engine.configs:  # check the file on a scratch copy first: a bad file keeps the old adapter
        _check_loadable(engine, config, rename_keys(state, name, _SCRATCH, _ADAPTER_SEGMENTS))
    previous_setup = engine.active_setup, engine.skip_layers
    with overwritten_init():  # every tensor is overwritten below, or the adapter is deleted again
        engine.add(name, config, overwrite_ok=True)
    try:
        match_state_dict(state, expected_groups(engine, name, _ADAPTER_SEGMENTS), engine.read_prefixes)
    except Exception:
        engine.delete(name)
        raise
    if previous_setup[0] is not None and engine.active_setup is None:  # reloading an active adapter
        engine.set_active(*previous_setup)
    if with_head and hasattr(model, "load_head") and (folder / HEAD_CONFIG_FILE).exists():
        model.load_head(str(folder), load_as=load_as)
    if set_active:
        model.set_active_adapters(name)
    return name


def _drop_layers(engine, config, state: dict, leave_out: list):
    """The config with ``leave_out`` added, and the state without those layers' weights."""
    parts = config_parts(config)  # a config union: every part must allow it
    refused = next((part for part in parts if not method_for_config(part).leave_out_on_load), None)
    if refused is not None:
        raise InvalidAdapterConfig(f"leave_out after loading is not supported for {refused.family}",
                                   field="leave_out")
    dropped = sorted({i for part in parts for i in part.leave_out} | {int(i) for i in leave_out})
    markers = tuple(f"{engine.layer_path(i)}." for i in dropped)
    kept = {k: v for k, v in state.items() if not any(m in k for m in markers)}
    return config.replace(leave_out=dropped), kept


def _canonical_aliases(state: dict, base_prefix: str) -> dict:
    """The adapters library stores some tensors under two names: keep one copy under our name.

    Each layer's alias of the shared prefix pool, ``adapter_norm_before`` (= ``adapter_down.0``), and a projection's
    ``shared_parameters.<name>.lora_A/B`` next to ``loras.<name>.lora_A/B`` (MTL-LoRA, ``share_parameters``).
    """
    marker = "prefix_tuning.pool.prefix_tunings."
    result = {}
    for key, value in state.items():
        if ".shared_parameters." in key and key.replace(".shared_parameters.", ".loras.", 1) in state:
            continue  # MTL-LoRA's shared A/B under its share's name too (= the adapter's name): the loras copy counts
        at = key.find(marker)
        if at > 0:
            key = f"{base_prefix}.prefix_tuning.prefix_tunings." + key[at + len(marker):]
        key = key.replace(".adapter_norm_before.", ".adapter_down.0.")
        result.setdefault(key, value)
    return result


def _check_loadable(engine, config, state: dict) -> None:
    with overwritten_init():
        engine.add(_SCRATCH, config, overwrite_ok=True)
    try:
        match_state_dict(state, expected_groups(engine, _SCRATCH, _ADAPTER_SEGMENTS), engine.read_prefixes)
    finally:
        engine.delete(_SCRATCH)


# --- fusion ---
def save_adapter_fusion(model, save_directory, fusion_name: str, with_head: bool = False) -> None:
    """Write adapter_fusion_config.json + model_adapter_fusion.safetensors."""
    engine = model.adapter_engine
    if fusion_name not in engine.fusions:
        raise AdapterNameNotFound(f"no fusion named {fusion_name!r}", field="name")
    config, names = engine.fusions[fusion_name]
    folder = Path(save_directory)
    folder.mkdir(parents=True, exist_ok=True)
    meta = build_adapter_config_json(config, fusion_name, model.config, model_class=_model_class(model),
                                     model_name=_model_name(model))
    meta["adapter_names"] = list(names)
    meta["hidden_size"] = engine.hidden_size
    write_weights(folder / FUSION_WEIGHTS_FILE, expected_groups(engine, fusion_name, _FUSION_SEGMENTS),
                  engine.weights_prefix)
    _write_json(folder / FUSION_CONFIG_FILE, meta)
    heads = getattr(model, "heads", None)
    if with_head and heads is not None and fusion_name in heads and hasattr(model, "save_head"):
        model.save_head(str(folder), fusion_name)


def load_adapter_fusion(model, path, load_as: Optional[str] = None, set_active: bool = False,
                        with_head: bool = False) -> str:
    """Add the fusion layer stored in ``path`` (its adapters must already be in the model)."""
    from .composition import Fuse

    engine = model.adapter_engine
    folder = resolve_adapter_folder(path)
    config, meta = read_fusion_config_json(_read_json(folder / FUSION_CONFIG_FILE))
    check_model_compatible(engine, meta)
    old_name = meta.get("name") or ",".join(meta.get("adapter_names") or [])
    names = meta.get("adapter_names") or old_name.split(",")
    name = load_as or old_name
    state = read_weights(folder, FUSION_WEIGHTS_FILE, "pytorch_model_adapter_fusion.bin", False)
    state = rename_keys(state, old_name, name, _FUSION_SEGMENTS)
    if name in engine.fusions:
        engine.delete_fusion(name)
    with overwritten_init():
        engine.add_fusion(Fuse(*names, name=name), config)
    try:
        match_state_dict(state, expected_groups(engine, name, _FUSION_SEGMENTS), engine.read_prefixes)
    except Exception:
        engine.delete_fusion(name)
        raise
    if with_head and hasattr(model, "load_head") and (folder / HEAD_CONFIG_FILE).exists():
        model.load_head(str(folder), load_as=load_as)
    if set_active:
        model.set_active_adapters(Fuse(*names, name=name))
    return name
