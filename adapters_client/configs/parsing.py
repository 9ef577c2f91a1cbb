"""Turning names, override strings and dicts into config objects (``load_config``)."""

from __future__ import annotations

import ast
import dataclasses
import re
from collections.abc import Mapping
from typing import Any, Callable

from ..errors import InvalidAdapterConfig
from ..rules import METHOD_ALIASES, find_remote_code_key
from .base import MethodConfig
from .fusion import AdapterFusionConfig, DynamicAdapterFusionConfig, StaticAdapterFusionConfig
from .methods import PRESETS, architecture_names, method_for_architecture, method_for_config
from .union import UNION_ARCHITECTURE, UNION_CONFIGS, ConfigUnion, union_name

DEFAULT_ADAPTER_CONFIG = "seq_bn"
DEFAULT_FUSION_CONFIG = "dynamic"

# preset name -> factory, read from the method registry (configs/methods.py); aliases (the adapters
# library's deprecated names) live in adapters_client.rules.
ADAPTER_CONFIGS: Mapping[str, Callable[[], MethodConfig]] = PRESETS
ALIASES = METHOD_ALIASES
FUSION_CONFIGS: dict[str, Callable[[], AdapterFusionConfig]] = {
    "dynamic": DynamicAdapterFusionConfig,
    "static": StaticAdapterFusionConfig,
}
_STRING_RE = re.compile(r"^\s*(?P<name>[^\[\]|\n]+?)\s*(?:\[(?P<kvs>.*)\])?\s*$", re.DOTALL)
_BARE_WORD_RE = re.compile(r"^[A-Za-z_][\w.+\-]*$")


def canonical_name(name: str) -> str:
    """``pfeiffer`` -> ``seq_bn``; unknown names raise InvalidAdapterConfig."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    if key not in ADAPTER_CONFIGS and key not in UNION_CONFIGS:
        known = ", ".join(sorted(set(ADAPTER_CONFIGS) | set(ALIASES) | set(UNION_CONFIGS)))
        raise InvalidAdapterConfig(f"unknown adapter method {name!r}; known: {known}", field="architecture")
    return key


def load_config(obj: Any, **overrides) -> MethodConfig:
    """A config object from a config, a dict (adapter_config.json's "config"), a name or ``name[k=v,...]``."""
    if obj is None:
        raise InvalidAdapterConfig("no adapter config given", field="config")
    if isinstance(obj, AdapterFusionConfig):
        raise InvalidAdapterConfig("a fusion config is not an adapter config", field="config")
    if isinstance(obj, MethodConfig):
        config = obj
    elif isinstance(obj, Mapping):
        config = config_from_dict(obj)
    elif isinstance(obj, str):
        config = _union_from_string(obj)
    else:
        raise InvalidAdapterConfig(f"cannot read an adapter config from {type(obj).__name__}", field="config")
    return config.replace(**overrides) if overrides else config


def config_from_dict(data: Mapping) -> MethodConfig:
    """Build a config from its dict form; unknown or missing keys are errors naming the key."""
    data = dict(data)
    remote = find_remote_code_key(data)  # the hub's rule: at any depth (adapters_client.rules)
    if remote is not None:
        raise InvalidAdapterConfig(f"config key {remote!r} (remote code) is not allowed", field=remote)
    legacy = data.pop("invertible_adapter", None)
    if legacy:
        data.setdefault("inv_adapter", legacy.get("block_type"))
        data.setdefault("inv_adapter_reduction_factor", legacy.get("reduction_factor"))
    architecture = data.get("architecture")
    if architecture == UNION_ARCHITECTURE:
        return _union_from_dict(data)
    method = method_for_architecture(architecture) if isinstance(architecture, (str, type(None))) else None
    if method is None:
        raise InvalidAdapterConfig(
            f"unsupported adapter architecture {architecture!r}; supported: {', '.join(architecture_names())}",
            field="architecture",
        )
    cls = method.config_class
    for factory in method.presets.values():  # a preset class with its own "architecture" value (mtl_lora)
        if (isinstance(factory, type) and issubclass(factory, cls) and architecture is not None
                and getattr(factory, "_architecture", None) == architecture != getattr(cls, "_architecture", None)):
            cls = factory
    if "architecture" not in {f.name for f in dataclasses.fields(cls)}:
        data.pop("architecture", None)
    return _construct(cls, data)


def _construct(cls: type, data: dict):
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields:
            raise InvalidAdapterConfig(f"unknown option {key!r} for {cls.__name__}", field=key)
    for name, spec in fields.items():
        required = spec.default is dataclasses.MISSING and spec.default_factory is dataclasses.MISSING
        if required and name not in data:
            raise InvalidAdapterConfig(f"missing option {name!r} for {cls.__name__}", field=name)
    try:
        return cls(**data)
    except TypeError as exc:  # pragma: no cover - guarded by the checks above
        raise InvalidAdapterConfig(str(exc), field="config") from exc


def load_fusion_config(obj: Any = None, **overrides) -> AdapterFusionConfig:
    """A fusion config from a config, a dict, ``"dynamic"``/``"static"`` (optionally with overrides)."""
    if obj is None:
        obj = DEFAULT_FUSION_CONFIG
    if isinstance(obj, AdapterFusionConfig):
        config = obj
    elif isinstance(obj, Mapping):
        data = dict(obj)
        data.pop("architecture", None)
        config = _construct(AdapterFusionConfig, data)
    elif isinstance(obj, str):
        config = _from_string(obj, FUSION_CONFIGS, _fusion_name)
    else:
        raise InvalidAdapterConfig(f"cannot read a fusion config from {type(obj).__name__}", field="config")
    return config.replace(**overrides) if overrides else config


def _fusion_name(name: str) -> str:
    key = name.strip().lower()
    if key not in FUSION_CONFIGS:
        raise InvalidAdapterConfig(f"unknown fusion config {name!r}; known: dynamic, static", field="config")
    return key


def _union_from_dict(data: dict) -> ConfigUnion:
    """``{"architecture": "union", "configs": [...]}`` (adapter_config.json of a union adapter)."""
    unknown = sorted(set(data) - {"architecture", "configs"})
    if unknown:
        raise InvalidAdapterConfig(f"unknown option {unknown[0]!r} for ConfigUnion", field=unknown[0])
    parts = data.get("configs")
    if not isinstance(parts, (list, tuple)):
        raise InvalidAdapterConfig("a config union needs 'configs', a list of configs", field="configs")
    for index, part in enumerate(parts):
        if not isinstance(part, Mapping):
            raise InvalidAdapterConfig(f"part {index} of the config union is not a config object", field="configs")
    return ConfigUnion(*[config_from_dict(part) for part in parts])


def _union_from_string(text: str) -> MethodConfig:
    """``name``, ``name[k=v]``, ``mam`` / ``unipelt``, or parts joined by ``|`` (each with its own overrides)."""
    chunks = _split_top_level(text, "|")
    if len(chunks) == 1:
        return _from_string(text, _ADAPTER_AND_UNION_CONFIGS, canonical_name)
    if any(not chunk.strip() for chunk in chunks):
        raise InvalidAdapterConfig(f"invalid config string {text!r}: empty part between '|'", field="config")
    return ConfigUnion(*[_from_string(chunk, _ADAPTER_AND_UNION_CONFIGS, canonical_name) for chunk in chunks])


class _AdapterAndUnionConfigs(Mapping):
    """Preset name -> factory: the registry's presets and the named unions (``mam``, ``unipelt``)."""

    def __getitem__(self, name):
        return UNION_CONFIGS[name] if name in UNION_CONFIGS else ADAPTER_CONFIGS[name]

    def __iter__(self):
        yield from ADAPTER_CONFIGS
        yield from UNION_CONFIGS

    def __len__(self) -> int:
        return len(ADAPTER_CONFIGS) + len(UNION_CONFIGS)


_ADAPTER_AND_UNION_CONFIGS = _AdapterAndUnionConfigs()


def _from_string(text: str, table: Mapping, resolve: Callable[[str], str]):
    match = _STRING_RE.match(text)
    if not match:
        raise InvalidAdapterConfig(f"invalid config string {text!r}; expected name or name[key=value,...]",
                                   field="config")
    config = table[resolve(match.group("name"))]()
    kvs = match.group("kvs")
    return config.replace(**parse_overrides(kvs)) if kvs else config


def parse_overrides(text: str) -> dict:
    """``"r=16,alpha=16"`` -> ``{"r": 16, "alpha": 16}``; values are Python/JSON literals or bare words."""
    result: dict = {}
    for part in _split_top_level(text):
        if not part.strip():
            continue
        key, sep, raw = part.partition("=")
        key = key.strip()
        if not sep or not re.fullmatch(r"[A-Za-z_]\w*", key):
            raise InvalidAdapterConfig(f"invalid override {part.strip()!r}; expected key=value", field="config")
        if key in result:
            raise InvalidAdapterConfig(f"option {key!r} given twice", field=key)
        result[key] = _parse_value(key, raw.strip())
    return result


def _parse_value(key: str, raw: str) -> Any:
    lowered = raw.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    if lowered in ("none", "null"):
        return None
    try:
        return ast.literal_eval(raw)
    except (ValueError, SyntaxError):
        if _BARE_WORD_RE.match(raw):
            return raw
        raise InvalidAdapterConfig(f"cannot read value {raw!r} for option {key!r}", field=key) from None


def _split_top_level(text: str, separator: str = ",") -> list[str]:
    """Split on ``separator`` (a comma by default) where it is not inside brackets or quotes."""
    parts, depth, quote, current = [], 0, None, []
    for char in text:
        if quote:
            if char == quote:
                quote = None
        elif char in "'\"":
            quote = char
        elif char in "[({":
            depth += 1
        elif char in "])}":
            depth -= 1
        elif char == separator and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(char)
    if quote or depth:
        raise InvalidAdapterConfig(f"unbalanced brackets or quotes in {text!r}", field="config")
    parts.append("".join(current))
    return parts


def method_name(config: MethodConfig) -> str:
    """The method's short name: seq_bn, double_seq_bn, par_bn, lora, ia3, prefix_tuning, prompt_tuning; for a
    config union ``mam`` / ``unipelt`` (the library's defaults) or its parts' names joined by ``|``."""
    if isinstance(config, ConfigUnion):
        return union_name(config, method_name)
    try:
        method = method_for_config(config)
    except InvalidAdapterConfig:
        return config.family
    return method.short_name(config)
