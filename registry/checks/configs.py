"""Checks of the JSON files of an adapter folder (CONTRACTS.md section 2).

A JSON file is read only up to settings.HUB_MAX_JSON_BYTES, must be UTF-8 and a JSON object
without duplicate keys, and may not carry keys that ask a loader to run remote code.
The method configuration is validated by ``adapters_client.configs`` (shared with the client).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from adapters_client.rules import REMOTE_CODE_KEYS  # noqa: F401 - re-exported: the one copy of the rule
from adapters_client.rules import MAX_JSON_DEPTH, find_remote_code_key, json_too_deep
from django.conf import settings

from ..errors import InvalidConfig
_SCALAR_FIELDS = {"model_class": str, "name": str, "version": str, "model_name": str}


@dataclass(frozen=True)
class AdapterMeta:
    """What adapter_config.json says about the adapter."""

    method: str
    config: dict
    config_hash: str
    model_name: str
    model_type: str
    hidden_size: int
    model_class: str
    name: str


def _invalid(filename: str, field: str, detail: str) -> InvalidConfig:
    where = f"{filename}: {field}" if field else filename
    return InvalidConfig(f"{where}: {detail}", filename=filename, field=field)


def _pairs_no_duplicates(filename: str):
    def hook(pairs):
        obj = {}
        for key, value in pairs:
            if key in obj:
                raise _invalid(filename, key, "duplicate key")
            obj[key] = value
        return obj

    return hook


def load_json_file(path: str, filename: str) -> dict:
    """Read a small JSON object from ``path``; 400 invalid_config naming the file when it is not one."""
    limit = settings.HUB_MAX_JSON_BYTES
    if os.path.getsize(path) > limit:
        raise _invalid(filename, "", f"larger than the limit of {limit} bytes for a JSON file")
    with open(path, "rb") as fh:
        raw = fh.read(limit + 1)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _invalid(filename, "", "not UTF-8") from None
    if json_too_deep(raw):
        raise _invalid(filename, "", f"nested more than {MAX_JSON_DEPTH} levels deep (or unbalanced brackets)")
    try:
        data = json.loads(text, object_pairs_hook=_pairs_no_duplicates(filename))
    except InvalidConfig:
        raise
    except RecursionError:
        raise _invalid(filename, "", f"nested more than {MAX_JSON_DEPTH} levels deep") from None
    except ValueError as exc:
        raise _invalid(filename, "", f"invalid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise _invalid(filename, "", "must be a JSON object")
    check_no_remote_code(data, filename)
    return data


def check_no_remote_code(data, filename: str) -> None:
    """Refuse ``auto_map`` and the other remote-code keys (adapters_client.rules) at any depth."""
    field = find_remote_code_key(data)
    if field is not None:
        raise _invalid(filename, field, "remote code is not accepted on the hub")


def _method_config(data: dict, filename: str):
    from adapters_client.configs import config_hash, load_config, method_name
    from adapters_client.errors import InvalidAdapterConfig

    raw = data.get("config")
    if not isinstance(raw, (dict, str)) or not raw:
        raise _invalid(filename, "config", "must be the method configuration (an object or a method name)")
    try:
        config = load_config(raw)
        digest = config_hash(config)
    except InvalidAdapterConfig as exc:
        field = f"config.{exc.field}" if exc.field else "config"
        raise _invalid(filename, field, exc.detail or str(exc)) from None
    except (ValueError, TypeError, KeyError) as exc:
        raise _invalid(filename, "config", str(exc)) from None
    method = method_name(config)
    if not method:
        raise _invalid(filename, "config", "the method of this configuration could not be determined")
    return config, str(method), digest


def _check_common(data: dict, filename: str) -> None:
    model_type = data.get("model_type")
    if not isinstance(model_type, str) or not model_type.strip():
        raise _invalid(filename, "model_type", "must be a non-empty string (e.g. 'bert')")
    hidden = data.get("hidden_size")
    if hidden is not None and (type(hidden) is not int or hidden <= 0):
        raise _invalid(filename, "hidden_size", f"must be a positive integer, got {hidden!r}")
    for field, kind in _SCALAR_FIELDS.items():
        if field in data and data[field] is not None and not isinstance(data[field], kind):
            raise _invalid(filename, field, f"must be a {kind.__name__}")


def check_adapter_config(data: dict, filename: str = "adapter_config.json") -> AdapterMeta:
    """Validate adapter_config.json; returns the method, its full config and its hash."""
    _check_common(data, filename)
    if type(data.get("hidden_size")) is not int:
        raise _invalid(filename, "hidden_size", "is required (the backbone's hidden size)")
    config, method, digest = _method_config(data, filename)
    return AdapterMeta(
        method=method,
        config=config.to_dict(),
        config_hash=digest,
        model_name=data.get("model_name") or "",
        model_type=data["model_type"],
        hidden_size=data["hidden_size"],
        model_class=data.get("model_class") or "",
        name=data.get("name") or "",
    )


def check_head_config(data: dict, filename: str = "head_config.json") -> dict:
    """A prediction head: ``config`` with a ``head_type``, integer ``num_labels`` / ``layers`` when given."""
    _check_common(data, filename)
    head = data.get("config")
    if not isinstance(head, dict):
        raise _invalid(filename, "config", "must be an object describing the head")
    if not isinstance(head.get("head_type"), str) or not head["head_type"]:
        raise _invalid(filename, "config.head_type", "must be a non-empty string")
    for field in ("num_labels", "layers"):
        value = head.get(field)
        if value is not None and (type(value) is not int or value < 0):
            raise _invalid(filename, f"config.{field}", f"must be a non-negative integer, got {value!r}")
    label2id = head.get("label2id")
    if label2id is not None and not isinstance(label2id, dict):
        raise _invalid(filename, "config.label2id", "must be an object")
    return head


def check_fusion_config(data: dict, filename: str = "adapter_fusion_config.json") -> dict:
    """A fusion layer: ``config`` must be an object."""
    fusion = data.get("config")
    if not isinstance(fusion, dict):
        raise _invalid(filename, "config", "must be an object describing the fusion layer")
    return fusion
