"""Bottleneck adapter configs (seq_bn, double_seq_bn, par_bn, compacter): fields and defaults of adapters 1.3.0."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Optional, Union

from .base import MethodConfig, _is_number

_PHM_DEFAULTS = {
    "phm_dim": 4,
    "factorized_phm_W": True,
    "shared_W_phm": False,
    "shared_phm_rule": True,
    "factorized_phm_rule": False,
    "phm_c_init": "normal",
    "phm_init_range": 0.0001,
    "learn_phm": True,
    "hypercomplex_nonlinearity": "glorot-uniform",
    "phm_rank": 1,
    "phm_bias": True,
}


@dataclass(frozen=True, eq=False)
class BnConfig(MethodConfig):
    """A bottleneck adapter: down-projection, non-linearity, up-projection, residual."""

    family = "bottleneck"

    mh_adapter: bool
    output_adapter: bool
    reduction_factor: Union[float, Mapping]
    non_linearity: str

    original_ln_before: bool = False
    original_ln_after: bool = True
    ln_before: bool = False
    ln_after: bool = False
    init_weights: str = "bert"
    init_weights_seed: Optional[int] = None
    is_parallel: bool = False
    scaling: Union[float, str] = 1.0
    use_gating: bool = False
    residual_before_ln: Union[bool, str] = True
    adapter_residual_before_ln: bool = False
    inv_adapter: Optional[str] = None
    inv_adapter_reduction_factor: Optional[float] = None
    cross_adapter: bool = False
    leave_out: list = field(default_factory=list)
    dropout: float = 0.0
    phm_layer: bool = False
    phm_dim: int = 4
    factorized_phm_W: Optional[bool] = True
    shared_W_phm: Optional[bool] = False
    shared_phm_rule: Optional[bool] = True
    factorized_phm_rule: Optional[bool] = False
    phm_c_init: Optional[str] = "normal"
    phm_init_range: Optional[float] = 0.0001
    learn_phm: Optional[bool] = True
    hypercomplex_nonlinearity: Optional[str] = "glorot-uniform"
    phm_rank: Optional[int] = 1
    phm_bias: Optional[bool] = True
    stochastic_depth: Optional[float] = 0.0

    def __post_init__(self) -> None:
        self._bool("mh_adapter", "output_adapter", "original_ln_before", "original_ln_after", "ln_before",
                   "ln_after", "is_parallel", "use_gating", "adapter_residual_before_ln", "cross_adapter",
                   "phm_layer")
        self._bool("factorized_phm_W", "shared_W_phm", "shared_phm_rule", "factorized_phm_rule", "learn_phm",
                   "phm_bias", optional=True)
        self._check_reduction_factor()
        self._activation("non_linearity")
        self._choice("init_weights", {"bert", "mam_adapter", "houlsby"})
        self._number("init_weights_seed", optional=True, integer=True)
        if not (_is_number(self.scaling) or self.scaling in ("learned", "channel")):
            self._fail("scaling", f"must be a number, 'learned' or 'channel', got {self.scaling!r}")
        if self.residual_before_ln not in (True, False, "post_add"):
            self._fail("residual_before_ln", f"must be true, false or 'post_add', got {self.residual_before_ln!r}")
        self._choice("inv_adapter", {"nice", "glow"}, optional=True)
        self._number("inv_adapter_reduction_factor", low=0, low_inclusive=False, optional=True)
        self._layer_list("leave_out")
        self._number("dropout", low=0.0, high=1.0)
        self._number("phm_dim", low=1, integer=True)
        self._number("phm_rank", low=1, integer=True, optional=True)
        self._number("phm_init_range", low=0.0, optional=True)
        self._choice("phm_c_init", {"normal", "uniform"}, optional=True)
        self._number("stochastic_depth", low=0.0, high=1.0, optional=True)
        if not (self.mh_adapter or self.output_adapter or self.cross_adapter):
            self._fail("output_adapter", "at least one of mh_adapter, output_adapter, cross_adapter must be true")

    def _check_reduction_factor(self) -> None:
        value = self.reduction_factor
        if isinstance(value, Mapping):
            for key, factor in value.items():
                if not (str(key) == "default" or str(key).isdigit()):
                    self._fail("reduction_factor", f"mapping keys must be layer indices or 'default', got {key!r}")
                if not _is_number(factor) or factor <= 0:
                    self._fail("reduction_factor", f"factor for {key!r} must be a number > 0, got {factor!r}")
        elif not _is_number(value) or value <= 0:
            self._fail("reduction_factor", f"must be a number > 0 or a mapping, got {value!r}")

    def _canonicalise(self, data: dict) -> dict:
        data["non_linearity"] = data["non_linearity"].lower()
        data["leave_out"] = sorted(set(data["leave_out"]))
        if not data["phm_layer"]:
            data.update(_PHM_DEFAULTS)
        if data["inv_adapter"] is None:
            data["inv_adapter_reduction_factor"] = None
        return data

    def reduction_factor_for(self, layer_idx: int) -> float:
        """The reduction factor used in layer ``layer_idx``."""
        value = self.reduction_factor
        if not isinstance(value, Mapping):
            return value
        for key in (str(layer_idx), layer_idx, "default"):
            if key in value:
                return value[key]
        self._fail("reduction_factor", f"no factor for layer {layer_idx} and no 'default'")


@dataclass(frozen=True, eq=False)
class SeqBnConfig(BnConfig):
    """Pfeiffer et al. (2020): one adapter after the FFN output."""

    mh_adapter: bool = False
    output_adapter: bool = True
    reduction_factor: Union[float, Mapping] = 16
    non_linearity: str = "relu"
    original_ln_before: bool = True
    original_ln_after: bool = True
    residual_before_ln: Union[bool, str] = True
    adapter_residual_before_ln: bool = False
    ln_before: bool = False
    ln_after: bool = False


@dataclass(frozen=True, eq=False)
class DoubleSeqBnConfig(BnConfig):
    """Houlsby et al. (2019): adapters after attention and after the FFN."""

    mh_adapter: bool = True
    output_adapter: bool = True
    reduction_factor: Union[float, Mapping] = 16
    non_linearity: str = "swish"
    original_ln_before: bool = False
    original_ln_after: bool = True
    residual_before_ln: Union[bool, str] = True
    adapter_residual_before_ln: bool = False
    ln_before: bool = False
    ln_after: bool = False


@dataclass(frozen=True, eq=False)
class ParBnConfig(BnConfig):
    """He et al. (2021): a scaled adapter in parallel to the FFN."""

    mh_adapter: bool = False
    output_adapter: bool = True
    reduction_factor: Union[float, Mapping] = 2
    non_linearity: str = "relu"
    original_ln_before: bool = False
    original_ln_after: bool = True
    ln_before: bool = False
    ln_after: bool = False
    init_weights: str = "mam_adapter"
    is_parallel: bool = True
    scaling: Union[float, str] = 4.0


@dataclass(frozen=True, eq=False)
class CompacterConfig(DoubleSeqBnConfig):
    """Compacter (Mahabadi et al., 2021): double_seq_bn with PHM layers (methods/bottleneck/phm.py)."""

    phm_layer: bool = True
    reduction_factor: Union[float, Mapping] = 32
    non_linearity: str = "gelu"


@dataclass(frozen=True, eq=False)
class CompacterPlusPlusConfig(SeqBnConfig):
    """Compacter++: seq_bn with PHM layers."""

    phm_layer: bool = True
    reduction_factor: Union[float, Mapping] = 32
    non_linearity: str = "gelu"


@dataclass(frozen=True, eq=False)
class SeqBnInvConfig(SeqBnConfig):
    """seq_bn plus an invertible (NICE) block on the embedding output, inverted in LM heads (methods/invertible)."""

    inv_adapter: Optional[str] = "nice"
    inv_adapter_reduction_factor: Optional[float] = 2


@dataclass(frozen=True, eq=False)
class DoubleSeqBnInvConfig(DoubleSeqBnConfig):
    """double_seq_bn plus an invertible (NICE) block on the embedding output, inverted in LM heads."""

    inv_adapter: Optional[str] = "nice"
    inv_adapter_reduction_factor: Optional[float] = 2


@dataclass(frozen=True, eq=False)
class AdapterPlusConfig(BnConfig):
    """AdapterPlus (Steitz & Roth, 2024): one adapter after the FFN output with channel-wise scaling, Houlsby
    init, GELU and stochastic depth (drop-path per sample on the adapter branch in training; methods/bottleneck).
    The library gives it no name: its dict form is a plain bottleneck dict (``"architecture": "bottleneck"``)."""

    mh_adapter: bool = False
    output_adapter: bool = True
    reduction_factor: Union[float, Mapping] = 96
    non_linearity: str = "gelu"
    original_ln_after: bool = False
    original_ln_before: bool = True
    residual_before_ln: Union[bool, str] = False
    stochastic_depth: Optional[float] = 0.1
    init_weights: str = "houlsby"
    scaling: Union[float, str] = "channel"
