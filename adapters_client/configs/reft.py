"""ReFT configs (representation fine-tuning, Wu et al. 2024): LoReFT, NoReFT, DiReFT, with the adapters
library 1.3.0's fields and defaults.

A ReFT adapter adds an intervention after the output of selected layers, at the first ``prefix_positions``
and the last ``suffix_positions`` attended tokens of each row. All three presets are ``ReftConfig`` values (a
config dict with ``"architecture": "reft"`` gives a ``ReftConfig``, as in the library); they differ in
``orthogonality`` (LoReFT) and ``subtract_projection`` (False: DiReFT).

``subtract_projection`` is a class attribute in the library, not a field, so the library writes no
``subtract_projection`` key into adapter_config.json and reads every ReFT file back with ``True``. Here it
is a field; ``to_dict`` leaves it out when it is True (the library's dict, exactly) and writes
``"subtract_projection": false`` for DiReFT, which the library reads back as an attribute, so a DiReFT
adapter saved here keeps its behaviour in both libraries.

Torch-free: the hub imports this to check uploaded configs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Union

from .base import MethodConfig

DTYPES = ("float32", "float16", "bfloat16", "float64")


@dataclass(frozen=True, eq=False)
class ReftConfig(MethodConfig):
    """Base ReFT config (the library's ``ReftConfig``): the first five fields have no default."""

    family = "reft"

    layers: Union[str, list]
    prefix_positions: int
    suffix_positions: int
    r: int
    orthogonality: bool
    tied_weights: bool = False
    subtract_projection: bool = True
    dropout: float = 0.05
    non_linearity: Optional[str] = None
    dtype: Optional[str] = None
    architecture: Optional[str] = "reft"
    output_reft: bool = True
    init_weights_seed: Optional[int] = None

    def __post_init__(self) -> None:
        if self.architecture != "reft":
            self._fail("architecture", f"must be 'reft', got {self.architecture!r}")
        if isinstance(self.layers, str):
            if self.layers != "all":
                self._fail("layers", f"must be 'all' or a list of layer indices, got {self.layers!r}")
        else:
            self._layer_list("layers")
            if not self.layers:
                self._fail("layers", "names no layer: the adapter would change nothing (use 'all' or indices)")
            if len(set(self.layers)) != len(self.layers):
                self._fail("layers", f"names a layer twice: {self.layers!r}")
        self._number("prefix_positions", low=0, integer=True)
        self._number("suffix_positions", low=0, integer=True)
        if self.prefix_positions == 0 and self.suffix_positions == 0:
            self._fail("prefix_positions", "prefix_positions and suffix_positions are both 0: no position "
                                           "would be intervened on")
        self._number("r", low=1, integer=True)
        self._bool("orthogonality", "tied_weights", "subtract_projection", "output_reft")
        if not self.output_reft:
            # the layer output is ReFT's only location: the library adds no module and the adapter does nothing
            self._fail("output_reft", "must be true: the layer output is ReFT's only intervention location")
        self._number("dropout", low=0.0, high=1.0)
        self._activation("non_linearity", optional=True)
        self._choice("dtype", set(DTYPES), optional=True)
        self._number("init_weights_seed", optional=True, integer=True)

    def to_dict(self) -> dict:
        """The library's dict; ``subtract_projection`` only when False (DiReFT; see the module docstring)."""
        data = super().to_dict()
        if data["subtract_projection"] is True:
            del data["subtract_projection"]
        return data

    @property
    def intervention_layers(self) -> Optional[list]:
        """The layer indices of the interventions; None for every layer."""
        return None if self.layers == "all" else list(self.layers)


@dataclass(frozen=True, eq=False)
class LoReftConfig(ReftConfig):
    """Low-rank linear subspace ReFT: orthonormal rows of the projection (``orthogonality=True``)."""

    layers: Union[str, list] = "all"
    prefix_positions: int = 3
    suffix_positions: int = 0
    r: int = 1
    orthogonality: bool = True


@dataclass(frozen=True, eq=False)
class NoReftConfig(ReftConfig):
    """LoReFT without the orthogonality constraint."""

    layers: Union[str, list] = "all"
    prefix_positions: int = 3
    suffix_positions: int = 0
    r: int = 1
    orthogonality: bool = False


@dataclass(frozen=True, eq=False)
class DiReftConfig(ReftConfig):
    """LoReFT without orthogonality and without subtracting the projection of the input."""

    layers: Union[str, list] = "all"
    prefix_positions: int = 3
    suffix_positions: int = 0
    r: int = 1
    orthogonality: bool = False
    subtract_projection: bool = False


def reft_name(config: ReftConfig) -> str:
    """The preset a ReFT config behaves like: loreft, noreft or direft."""
    if config.orthogonality:
        return "loreft"
    return "noreft" if config.subtract_projection else "direft"
