"""Config unions: several methods under one adapter name (the adapters library's ``ConfigUnion``).

A union is written ``"prefix_tuning|par_bn"`` (each part may carry its own ``[key=value,...]``), given as a
dict ``{"architecture": "union", "configs": [...]}`` (what adapter_config.json holds) or built from config
objects. ``mam`` (prefix tuning + scaled parallel bottleneck, He et al. 2021) and ``unipelt`` (gated prefix
tuning + seq_bn + LoRA, Mao et al. 2022) are named unions with the library's defaults.

Torch-free. The engine adds each part through the method registry under the union's adapter name, so the
weights of a union adapter are the weights of its parts, each under its own method's keys.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Optional

from ..errors import InvalidAdapterConfig
from .base import MethodConfig
from .bottleneck import BnConfig, ParBnConfig, SeqBnConfig
from .lora import LoRAConfig
from .prefix_prompt import PrefixTuningConfig

UNION_ARCHITECTURE = "union"
# method_name() of a union is its parts' names joined by "|"; longer than this, it is just "union" (the hub
# keeps the method in a 32-character field)
_MAX_NAME = 32


class ConfigUnion(MethodConfig):
    """Several method configs applied together under one adapter name (immutable).

    Parts are config objects, dicts or names; a union inside a union is refused. Two parts of one method are
    refused like the library refuses them: unless one of them has a ``leave_out``, only bottleneck parts at
    different places (``mh_adapter`` and ``output_adapter`` both differ) can be combined.
    """

    family = "union"
    architecture = UNION_ARCHITECTURE

    def __init__(self, *configs):
        if len(configs) == 1 and isinstance(configs[0], (list, tuple)):
            configs = tuple(configs[0])
        parts = tuple(_part(config, index) for index, config in enumerate(configs))
        validate_union(parts)
        object.__setattr__(self, "configs", parts)

    def __setattr__(self, name, value):
        raise AttributeError(f"{type(self).__name__} is immutable; use replace()")

    def __delattr__(self, name):
        raise AttributeError(f"{type(self).__name__} is immutable")

    def __repr__(self) -> str:
        return f"{type(self).__name__}({', '.join(repr(c) for c in self.configs)})"

    # --- mapping access, as the library's union: ``union[0]`` is a part, ``union["1.r"]`` a part's field ---
    def __getitem__(self, key):
        if isinstance(key, int) and not isinstance(key, bool):
            return self.configs[key]
        if key == "architecture":
            return self.architecture
        if key == "configs":
            return self.configs
        if isinstance(key, str) and "." in key:
            index, _, field = key.partition(".")
            if index.isdigit() and int(index) < len(self.configs):
                return self.configs[int(index)][field]
        raise KeyError(key)

    def get(self, key, default: Any = None) -> Any:
        try:
            return self[key]
        except (KeyError, IndexError):
            return default

    def __iter__(self):
        for index, config in enumerate(self.configs):
            for key in config:
                yield f"{index}.{key}"

    def __len__(self) -> int:
        return sum(len(config) for config in self.configs)

    def keys(self):
        return list(iter(self))

    def items(self):
        return [(key, self[key]) for key in self]

    # --- conversion ---
    def to_dict(self) -> dict:
        return {"architecture": UNION_ARCHITECTURE, "configs": [config.to_dict() for config in self.configs]}

    def canonical_dict(self) -> dict:
        return {"architecture": UNION_ARCHITECTURE, "configs": [config.canonical_dict() for config in self.configs]}

    def replace(self, **changes) -> "ConfigUnion":
        """Every part with ``changes`` applied (the library's rule: an option some part lacks is an error)."""
        return ConfigUnion(*[config.replace(**changes) for config in self.configs])

    @classmethod
    def from_dict(cls, data) -> "ConfigUnion":
        from .parsing import config_from_dict

        return config_from_dict(data)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MethodConfig):
            return NotImplemented
        return self.canonical_dict() == other.canonical_dict()

    def __hash__(self) -> int:
        return hash(repr(self.canonical_dict()))


class MAMConfig(ConfigUnion):
    """Mix-and-Match adapter (He et al., 2021): prefix tuning (bottleneck 800) + parallel bottleneck (scaling 4)."""

    def __init__(self, prefix_tuning: Optional[PrefixTuningConfig] = None, adapter: Optional[BnConfig] = None):
        prefix_tuning = prefix_tuning if prefix_tuning is not None else PrefixTuningConfig(bottleneck_size=800)
        adapter = adapter if adapter is not None else ParBnConfig()
        if not isinstance(prefix_tuning, PrefixTuningConfig):
            raise InvalidAdapterConfig("MAMConfig: prefix_tuning must be a PrefixTuningConfig", field="prefix_tuning")
        if not isinstance(adapter, BnConfig):
            raise InvalidAdapterConfig("MAMConfig: adapter must be a bottleneck config", field="adapter")
        super().__init__(prefix_tuning, adapter)

    @property
    def prefix_tuning(self) -> PrefixTuningConfig:
        return self.configs[0]

    @property
    def adapter(self) -> BnConfig:
        return self.configs[1]


class UniPELTConfig(ConfigUnion):
    """UniPELT (Mao et al., 2022): prefix tuning (length 10), seq_bn (reduction 16), LoRA (r 8, alpha 2), each
    with a learned gate (``use_gating=True`` is set on every part)."""

    def __init__(self, prefix_tuning: Optional[PrefixTuningConfig] = None, adapter: Optional[BnConfig] = None,
                 lora: Optional[LoRAConfig] = None):
        parts = [prefix_tuning if prefix_tuning is not None else PrefixTuningConfig(prefix_length=10),
                 adapter if adapter is not None else SeqBnConfig(reduction_factor=16),
                 lora if lora is not None else LoRAConfig(r=8, alpha=2)]
        super().__init__(*[_part(part, index).replace(use_gating=True) for index, part in enumerate(parts)])


def _part(config, index: int) -> MethodConfig:
    """One part of a union as a config object (a config, a dict or a name)."""
    from .fusion import AdapterFusionConfig
    from .parsing import load_config

    if isinstance(config, AdapterFusionConfig):
        raise InvalidAdapterConfig(f"part {index} of the config union is a fusion config", field="configs")
    if not isinstance(config, MethodConfig):
        if not isinstance(config, (str, Mapping)):
            raise InvalidAdapterConfig(f"part {index} of the config union is not an adapter config: {config!r}",
                                       field="configs")
        config = load_config(config)
    if isinstance(config, ConfigUnion):
        raise InvalidAdapterConfig(f"part {index} of the config union is a union itself; unions cannot be nested",
                                   field="configs")
    return config


def validate_union(parts: tuple) -> None:
    """The library's checks: at least one part; two parts of one method only where it allows them."""
    if not parts:
        raise InvalidAdapterConfig("a config union needs at least one config", field="configs")
    for i, first in enumerate(parts):
        for j in range(i + 1, len(parts)):
            second = parts[j]
            if first.family != second.family:
                continue
            if first.get("leave_out") or second.get("leave_out"):
                continue  # the library decides per layer (a layer claimed by both is refused when added)
            if first.family == "bottleneck":
                if first.mh_adapter != second.mh_adapter and first.output_adapter != second.output_adapter:
                    continue
                raise InvalidAdapterConfig(
                    f"config union parts {i} and {j} are bottleneck adapters at the same place (mh_adapter / "
                    f"output_adapter); they cannot be combined", field="configs")
            raise InvalidAdapterConfig(
                f"config union parts {i} and {j} are both {first.family} configs; they cannot be combined "
                f"(unless a leave_out separates their layers)", field="configs")


def config_parts(config) -> tuple:
    """The method configs of ``config``: a union's parts, or the config itself."""
    return config.configs if isinstance(config, ConfigUnion) else (config,)


UNION_CONFIGS = {"mam": MAMConfig, "unipelt": UniPELTConfig}


def union_name(config: ConfigUnion, part_name) -> str:
    """``mam`` / ``unipelt`` for the library's defaults, else the parts' names joined by ``|`` (``union`` when
    that is too long)."""
    for name, factory in UNION_CONFIGS.items():
        if config == factory():
            return name
    joined = "|".join(part_name(part) for part in config.configs)
    return joined if len(joined) <= _MAX_NAME else UNION_ARCHITECTURE


def parts_by_method(config) -> list:
    """``[(MethodSpec, parts), ...]``: the parts of ``config`` grouped by registered method, in order of first
    appearance (a plain config: one method, one part). What one adapter name cannot hold is refused here:
    two parts of a model-level method (one prefix pool / soft prompt per name; the library fails on it too) and
    two parts of a per-layer method when one of them has model-wide modules (invertible block, shared PHM or
    VeRA parameters: one set per name)."""
    from .methods import method_for_config

    grouped: dict = {}
    for part in config_parts(config):
        method = method_for_config(part)
        grouped.setdefault(method.name, (method, []))[1].append(part)
    result = []
    for method, parts in grouped.values():
        if len(parts) > 1:
            if method.scope != "layer":
                raise InvalidAdapterConfig(f"a config union holds {len(parts)} {method.name} configs; one adapter "
                                           f"has one {method.name} module", field="configs")
            if method.name == "lora":  # adapters 1.3.0 fails to add these (its VeRA check finds two LoRA configs)
                raise InvalidAdapterConfig(f"a config union holds {len(parts)} LoRA-family configs; the adapters "
                                           "library cannot add such an adapter either", field="configs")
            if any(_has_model_parts(part) for part in parts):
                raise InvalidAdapterConfig(
                    f"a config union holds {len(parts)} {method.name} configs and one of them has model-wide "
                    f"modules (invertible adapter, shared PHM or VeRA parameters); one adapter has one set",
                    field="configs")
        result.append((method, tuple(parts)))
    return result


def _has_model_parts(config) -> bool:
    if isinstance(config, BnConfig):
        return bool(config.inv_adapter) or bool(config.phm_layer)
    if isinstance(config, LoRAConfig):
        return config.is_vera
    return False
