"""Shared base of every method configuration: immutable dataclasses with dict-like access.

Torch-free: the hub imports this to check uploaded ``adapter_config.json`` files.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, ClassVar

from ..errors import InvalidAdapterConfig

# Activation names understood by the engine (lower case; "leakyrelu" is the library's spelling).
ACTIVATIONS = frozenset(
    {
        "relu", "gelu", "gelu_new", "gelu_fast", "gelu_python", "gelu_pytorch_tanh", "gelu_accurate",
        "quick_gelu", "swish", "silu", "tanh", "sigmoid", "leakyrelu", "leaky_relu", "linear",
        "mish", "relu6", "relu2",
    }
)


class MethodConfig:
    """Base for method configs: frozen dataclass fields, ``to_dict``, ``replace``, mapping access."""

    architecture: ClassVar[str | None] = None
    # Method name used for hashing/display, e.g. "bottleneck", "lora".
    family: ClassVar[str] = ""

    # --- mapping-style access (the adapters library's configs behave like mappings) ---
    def __getitem__(self, key: str) -> Any:
        if key not in self._field_names():
            raise KeyError(key)
        return getattr(self, key)

    def get(self, key: str, default: Any = None) -> Any:
        return getattr(self, key) if key in self._field_names() else default

    def __iter__(self):
        return iter(self._field_names())

    def __len__(self) -> int:
        return len(self._field_names())

    def keys(self):
        return list(self._field_names())

    def items(self):
        return [(k, getattr(self, k)) for k in self._field_names()]

    @classmethod
    def _field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in dataclasses.fields(cls))

    @classmethod
    def load(cls, config, **overrides) -> "MethodConfig":
        """Like the adapters library's ``AdapterConfig.load``: a name, ``name[k=v]``, dict or config object."""
        from .parsing import load_config, load_fusion_config

        if cls.family == "fusion":
            return load_fusion_config(config, **overrides)
        return load_config(config, **overrides)

    # --- conversion ---
    def to_dict(self) -> dict:
        """The dict the ``adapters`` library writes into adapter_config.json's ``config``."""
        return {k: _plain(getattr(self, k)) for k in self._field_names()}

    def replace(self, **changes) -> "MethodConfig":
        """A copy with ``changes`` applied (validated again)."""
        unknown = [k for k in changes if k not in self._field_names()]
        if unknown:
            raise InvalidAdapterConfig(
                f"unknown option {unknown[0]!r} for {type(self).__name__}", field=unknown[0]
            )
        return dataclasses.replace(self, **changes)

    def canonical_dict(self) -> dict:
        """Every field, defaults filled, normalised so that equal behaviour gives equal dicts."""
        data = self.to_dict()
        data["architecture"] = self.family
        return _normalise_numbers(self._canonicalise(data))

    def _canonicalise(self, data: dict) -> dict:
        return data

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, MethodConfig):
            return NotImplemented
        return self.canonical_dict() == other.canonical_dict()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.canonical_dict().items(), key=lambda kv: kv[0])))

    # --- validation helpers used by subclasses' __post_init__ ---
    def _set(self, name: str, value: Any) -> None:
        object.__setattr__(self, name, value)

    def _fail(self, name: str, message: str) -> None:
        raise InvalidAdapterConfig(f"{type(self).__name__}.{name}: {message}", field=name)

    def _bool(self, *names: str, optional: bool = False) -> None:
        for name in names:
            value = getattr(self, name)
            if value is None and optional:
                continue
            if not isinstance(value, bool):
                self._fail(name, f"must be true or false, got {value!r}")

    def _number(self, name: str, low: float | None = None, high: float | None = None,
                low_inclusive: bool = True, optional: bool = False, integer: bool = False) -> None:
        value = getattr(self, name)
        if value is None and optional:
            return
        if integer:
            if isinstance(value, float) and value.is_integer():
                value = int(value)
                self._set(name, value)
            if not isinstance(value, int) or isinstance(value, bool):
                self._fail(name, f"must be an integer, got {value!r}")
        elif not _is_number(value):
            self._fail(name, f"must be a number, got {value!r}")
        if low is not None and (value < low or (value == low and not low_inclusive)):
            bound = ">=" if low_inclusive else ">"
            self._fail(name, f"must be {bound} {low}, got {value!r}")
        if high is not None and value > high:
            self._fail(name, f"must be <= {high}, got {value!r}")

    def _choice(self, name: str, choices, optional: bool = False) -> None:
        value = getattr(self, name)
        if value is None and optional:
            return
        if value not in choices:
            allowed = ", ".join(repr(c) for c in sorted(choices, key=str))
            self._fail(name, f"must be one of {allowed}, got {value!r}")

    def _activation(self, name: str, optional: bool = False) -> None:
        value = getattr(self, name)
        if value is None and optional:
            return
        if not isinstance(value, str) or value.lower() not in ACTIVATIONS:
            self._fail(name, f"unknown activation {value!r}; known: {', '.join(sorted(ACTIVATIONS))}")

    def _layer_list(self, name: str) -> None:
        value = getattr(self, name)
        if isinstance(value, tuple):
            value = list(value)
            self._set(name, value)
        if not isinstance(value, list) or not all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in value
        ):
            self._fail(name, f"must be a list of layer indices (integers >= 0), got {value!r}")


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    """Deep copy of lists/dicts so callers cannot mutate the config through ``to_dict``."""
    if isinstance(value, Mapping):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _normalise_numbers(value: Any) -> Any:
    """Integral floats become ints (16.0 == 16), mapping keys become strings."""
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, Mapping):
        return {str(k): _normalise_numbers(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_normalise_numbers(v) for v in value]
    return value
