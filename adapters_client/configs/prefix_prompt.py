"""Prefix tuning and prompt tuning configs."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from .base import MethodConfig


@dataclass(frozen=True, eq=False)
class PrefixTuningConfig(MethodConfig):
    """Li & Liang (2021): learned keys/values prepended in every attention layer."""

    family = "prefix_tuning"

    architecture: Optional[str] = "prefix_tuning"
    encoder_prefix: bool = True
    cross_prefix: bool = True
    leave_out: list = field(default_factory=list)
    flat: bool = False
    prefix_length: int = 30
    bottleneck_size: int = 512
    non_linearity: str = "tanh"
    dropout: float = 0.0
    use_gating: bool = False
    shared_gating: bool = True
    init_weights_seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.architecture != "prefix_tuning":
            self._fail("architecture", f"must be 'prefix_tuning', got {self.architecture!r}")
        self._bool("encoder_prefix", "cross_prefix", "flat", "use_gating", "shared_gating")
        self._layer_list("leave_out")
        self._number("prefix_length", low=1, integer=True)
        self._number("bottleneck_size", low=1, integer=True)
        self._activation("non_linearity")
        self._number("dropout", low=0.0, high=1.0)
        self._number("init_weights_seed", optional=True, integer=True)

    def _canonicalise(self, data: dict) -> dict:
        data["leave_out"] = sorted(set(data["leave_out"]))
        data["non_linearity"] = data["non_linearity"].lower()
        if data["flat"]:
            data["bottleneck_size"] = 512
            data["non_linearity"] = "tanh"
        return data


@dataclass(frozen=True, eq=False)
class PromptTuningConfig(MethodConfig):
    """Lester et al. (2021): learned soft-prompt embeddings prepended to the input."""

    family = "prompt_tuning"

    architecture: Optional[str] = "prompt_tuning"
    prompt_length: int = 10
    prompt_init: str = "random_uniform"
    prompt_init_text: Optional[str] = None
    combine: str = "prefix"
    init_weights_seed: Optional[int] = None

    # Not a field in the adapters library either (never saved): scale of the uniform init.
    random_uniform_scale = 0.5

    def __post_init__(self) -> None:
        if self.architecture != "prompt_tuning":
            self._fail("architecture", f"must be 'prompt_tuning', got {self.architecture!r}")
        self._number("prompt_length", low=1, integer=True)
        self._choice("prompt_init", {"random_uniform", "from_string"})
        self._choice("combine", {"prefix", "prefix_after_bos"})
        self._number("init_weights_seed", optional=True, integer=True)
        if self.prompt_init == "from_string" and not isinstance(self.prompt_init_text, str):
            self._fail("prompt_init_text", "prompt_init 'from_string' needs a prompt_init_text string")
        if self.prompt_init_text is not None and not isinstance(self.prompt_init_text, str):
            self._fail("prompt_init_text", f"must be a string, got {self.prompt_init_text!r}")

    def _canonicalise(self, data: dict) -> dict:
        if data["prompt_init"] != "from_string":
            data["prompt_init_text"] = None
        return data
