"""Config hash and the content of adapter_config.json (CONTRACTS.md section 2), torch-free."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from typing import Any

from ..errors import IncompatibleAdapter, InvalidAdapterConfig
from ..rules import find_remote_code_key
from .base import MethodConfig
from .fusion import AdapterFusionConfig
from .parsing import FUSION_CONFIGS, load_config, load_fusion_config

# "version" written into adapter_config.json: the adapters library's format we follow.
FORMAT_VERSION = "adapters.1.3.0"
CONFIG_FILE = "adapter_config.json"
WEIGHTS_FILE = "adapter.safetensors"
PICKLE_WEIGHTS_FILE = "pytorch_adapter.bin"
HEAD_CONFIG_FILE = "head_config.json"
HEAD_WEIGHTS_FILE = "model_head.safetensors"
FUSION_CONFIG_FILE = "adapter_fusion_config.json"
FUSION_WEIGHTS_FILE = "model_adapter_fusion.safetensors"
README_FILE = "README.md"
# The files an adapter folder may hold on the hub (safetensors only), in upload order.
HUB_FILES = (
    CONFIG_FILE, WEIGHTS_FILE, HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE, FUSION_CONFIG_FILE, FUSION_WEIGHTS_FILE,
    README_FILE,
)
# Old adapter-transformers files (no "version") used these activation names.
_LEGACY_ACTIVATIONS = {"gelu": "gelu_new", "gelu_orig": "gelu"}
_META_KEYS = ("hidden_size", "model_class", "model_name", "model_type", "name", "version")


def canonical_json(config: Any) -> str:
    """Sorted-key JSON of the config with every field present (defaults filled in)."""
    if isinstance(config, AdapterFusionConfig):
        data = config.canonical_dict()
    elif _is_fusion_spec(config):
        data = load_fusion_config(config).canonical_dict()
    else:
        data = load_config(config).canonical_dict()
    return json.dumps(data, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _is_fusion_spec(config: Any) -> bool:
    if isinstance(config, Mapping):
        return "key" in config and "query" in config
    return isinstance(config, str) and config.split("[")[0].strip().lower() in FUSION_CONFIGS


def config_hash(config: Any) -> str:
    """First 16 hex digits of the sha1 of ``canonical_json(config)``."""
    return hashlib.sha1(canonical_json(config).encode("utf-8")).hexdigest()[:16]


def _model_attr(model_config: Any, name: str) -> Any:
    if isinstance(model_config, Mapping):
        return model_config.get(name)
    return getattr(model_config, name, None)


def build_adapter_config_json(
    config: Any,
    name: str,
    model_config: Any,
    model_class: str | None = None,
    model_name: str | None = None,
    version: str = FORMAT_VERSION,
) -> dict:
    """The content of adapter_config.json for adapter ``name`` (``model_config``: HF config or dict)."""
    if isinstance(config, AdapterFusionConfig):
        config_dict = config.to_dict()
    else:
        config_dict = load_config(config).to_dict()
    return {
        "config": config_dict,
        "hidden_size": _model_attr(model_config, "hidden_size"),
        "model_class": model_class,
        "model_name": model_name,
        "model_type": _model_attr(model_config, "model_type"),
        "name": name,
        "version": version,
    }


def read_adapter_config_json(data: Any) -> tuple[MethodConfig, dict]:
    """Validate adapter_config.json content; returns (method config, the other metadata)."""
    if not isinstance(data, Mapping):
        raise IncompatibleAdapter(f"{CONFIG_FILE} must hold a JSON object", field="adapter_config.json")
    remote = find_remote_code_key(data)  # the whole file, at any depth, as the hub checks it
    if remote is not None:
        raise InvalidAdapterConfig(f"{CONFIG_FILE}: key {remote!r} (remote code) is not allowed", field=remote)
    if "config" not in data or not isinstance(data["config"], Mapping):
        raise InvalidAdapterConfig(f"{CONFIG_FILE} has no 'config' object", field="config")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise IncompatibleAdapter(f"{CONFIG_FILE} has no adapter 'name'", field="name")
    config_dict = dict(data["config"])
    if "version" not in data and config_dict.get("non_linearity") in _LEGACY_ACTIVATIONS:
        config_dict["non_linearity"] = _LEGACY_ACTIVATIONS[config_dict["non_linearity"]]
    config = load_config(config_dict)
    meta = {k: data.get(k) for k in _META_KEYS}
    return config, meta


def read_fusion_config_json(data: Any) -> tuple[AdapterFusionConfig, dict]:
    """Validate adapter_fusion_config.json content; returns (fusion config, the other metadata)."""
    if not isinstance(data, Mapping) or not isinstance(data.get("config"), Mapping):
        raise InvalidAdapterConfig(f"{FUSION_CONFIG_FILE} has no 'config' object", field="config")
    config = load_fusion_config(data["config"])
    meta = {k: data.get(k) for k in _META_KEYS + ("adapter_names",)}
    return config, meta
