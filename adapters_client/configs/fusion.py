"""AdapterFusion configs ("dynamic" and "static"), fields and defaults of adapters 1.3.0."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .base import MethodConfig


@dataclass(frozen=True, eq=False)
class AdapterFusionConfig(MethodConfig):
    """Attention over the outputs of several adapters (Pfeiffer et al., 2021)."""

    family = "fusion"

    key: bool
    query: bool
    value: bool
    query_before_ln: bool
    regularization: bool
    residual_before: bool
    temperature: bool
    value_before_softmax: bool
    value_initialized: Union[bool, str]
    dropout_prob: Optional[float]

    def __post_init__(self) -> None:
        self._bool("key", "query", "value", "query_before_ln", "regularization", "residual_before",
                   "temperature", "value_before_softmax")
        if not isinstance(self.value_initialized, (bool, str)):
            self._fail("value_initialized", f"must be a boolean or a string, got {self.value_initialized!r}")
        self._number("dropout_prob", low=0.0, high=1.0, optional=True)


@dataclass(frozen=True, eq=False)
class DynamicAdapterFusionConfig(AdapterFusionConfig):
    """Fusion with a value matrix and regularisation (the default)."""

    key: bool = True
    query: bool = True
    value: bool = True
    query_before_ln: bool = False
    regularization: bool = True
    residual_before: bool = False
    temperature: bool = False
    value_before_softmax: bool = True
    value_initialized: Union[bool, str] = True
    dropout_prob: Optional[float] = None


@dataclass(frozen=True, eq=False)
class StaticAdapterFusionConfig(AdapterFusionConfig):
    """Fusion without a value matrix."""

    key: bool = True
    query: bool = True
    value: bool = False
    query_before_ln: bool = False
    regularization: bool = False
    residual_before: bool = False
    temperature: bool = False
    value_before_softmax: bool = True
    value_initialized: Union[bool, str] = False
    dropout_prob: Optional[float] = None
