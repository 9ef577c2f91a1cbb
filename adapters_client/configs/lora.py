"""LoRA-family configs: LoRA, (IA)^3 (``composition_mode="scale"``), DoRA (``use_dora``), VeRA (``vera_d``/``vera_b``)
and DVoRA (both), each with the adapters library's field defaults. All are LoRAConfig values: a config dict
with ``"architecture": "lora"`` gives the same object as the preset, so names, dicts and hashes agree."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional, Union

from .base import MethodConfig

ATTN_MATRICES = ("q", "k", "v")


@dataclass(frozen=True, eq=False)
class LoRAConfig(MethodConfig):
    """Low-rank updates of the attention (and optionally FFN) weight matrices."""

    family = "lora"
    _architecture = "lora"  # the "architecture" value of this class (MTLLoRAConfig: "mtl_lora")

    architecture: Optional[str] = "lora"
    selfattn_lora: bool = True
    intermediate_lora: bool = False
    output_lora: bool = False
    leave_out: list = field(default_factory=list)
    r: int = 8
    alpha: int = 8
    dropout: float = 0.0
    attn_matrices: list = field(default_factory=lambda: ["q", "v"])
    composition_mode: str = "add"
    init_weights: str = "lora"
    init_weights_seed: Optional[int] = None
    use_gating: bool = False
    use_dora: bool = False
    vera_d: Optional[float] = None
    vera_b: Optional[float] = None
    dtype: Optional[str] = None

    def __post_init__(self) -> None:
        if self.architecture != self._architecture:
            self._fail("architecture", f"must be {self._architecture!r}, got {self.architecture!r}")
        self._bool("selfattn_lora", "intermediate_lora", "output_lora", "use_gating", "use_dora")
        self._layer_list("leave_out")
        self._number("r", low=1, integer=True)
        self._number("alpha", low=0, low_inclusive=False)
        self._number("dropout", low=0.0, high=1.0)
        matrices = self.attn_matrices
        if isinstance(matrices, tuple):
            matrices = list(matrices)
            self._set("attn_matrices", matrices)
        if not isinstance(matrices, list) or not all(m in ATTN_MATRICES for m in matrices):
            self._fail("attn_matrices", f"must be a list drawn from 'q', 'k', 'v', got {matrices!r}")
        self._choice("composition_mode", {"add", "scale"})
        self._choice("init_weights", {"lora", "bert", "ia3", "vera"})
        self._number("init_weights_seed", optional=True, integer=True)
        self._number("vera_d", optional=True)
        self._number("vera_b", optional=True)
        self._check_vera()
        self._choice("dtype", {"float32", "float16", "bfloat16", "float64"}, optional=True)
        if self.composition_mode == "scale" and self.r != 1:
            self._fail("r", f"composition_mode 'scale' needs r=1, got {self.r!r}")
        if self.use_dora and self.composition_mode != "add":
            self._fail("use_dora", "DoRA needs composition_mode 'add'")

    @property
    def is_vera(self) -> bool:
        """VeRA (or DVoRA): frozen random A/B shared by every layer, trainable scaling matrices per layer."""
        return self.vera_d is not None or self.vera_b is not None

    def _check_vera(self) -> None:
        if not self.is_vera:
            return
        for name in ("vera_d", "vera_b"):
            if getattr(self, name) is None:
                # the library multiplies by it: a single vera value crashes there
                self._fail(name, "VeRA needs both vera_d and vera_b (got only one)")
            # the library only recognises float values; 0 and 0.0 are one setting here, written as floats
            self._set(name, float(getattr(self, name)))
        if self.composition_mode != "add":
            self._fail("composition_mode", "VeRA needs composition_mode 'add'")

    def _canonicalise(self, data: dict) -> dict:
        data["leave_out"] = sorted(set(data["leave_out"]))
        data["attn_matrices"] = sorted(set(data["attn_matrices"]))
        return data


@dataclass(frozen=True, eq=False)
class IA3Config(LoRAConfig):
    """(IA)^3 (Liu et al., 2022): learned vectors scaling k, v and the intermediate projection."""

    selfattn_lora: bool = True
    intermediate_lora: bool = True
    output_lora: bool = False
    r: int = 1
    alpha: int = 1
    dropout: float = 0.0
    attn_matrices: list = field(default_factory=lambda: ["k", "v"])
    composition_mode: str = "scale"
    init_weights: str = "ia3"


@dataclass(frozen=True, eq=False)
class DoRAConfig(LoRAConfig):
    """DoRA (Liu et al., 2024): LoRA whose updated weight is renormalised per output row and scaled by a
    trainable magnitude vector (``m``, initialised to the row norms of the frozen weight)."""

    use_dora: bool = True


@dataclass(frozen=True, eq=False)
class VeraConfig(LoRAConfig):
    """VeRA (Kopiczko et al., 2024): A and B are frozen random matrices shared by every adapted layer; each
    layer trains a diagonal-initialised ``vera_D`` (r x r, starts at ``vera_d``) and ``vera_B`` (out x out,
    starts at ``vera_b``)."""

    vera_d: Optional[float] = 0.1
    vera_b: Optional[float] = 0.0
    init_weights: str = "vera"


@dataclass(frozen=True, eq=False)
class DvoRAConfig(VeraConfig):
    """DVoRA: VeRA's update with DoRA's magnitude/direction split."""

    use_dora: bool = True


@dataclass(frozen=True, eq=False)
class MTLLoRAConfig(LoRAConfig):
    """MTL-LoRA (Yang et al., 2024): LoRA with a task-specific r x r transform between A and ``n_up_projection``
    up-projections mixed by learned weights (softmax with temperature ``weights_sharpness``); adapters of several
    tasks share A and the up-projections (``share_parameters``) and a MultiTask block routes each row by its task
    id (``task_ids``). The engine's side: methods/lora/mtl.py."""

    _architecture = "mtl_lora"

    architecture: Optional[str] = "mtl_lora"
    n_up_projection: int = 1
    task_specific_matrix_type: str = "singular_values"
    weights_sharpness: Union[float, int] = 0.05

    def __post_init__(self) -> None:
        super().__post_init__()
        self._number("n_up_projection", low=1, integer=True)
        self._choice("task_specific_matrix_type", {"singular_values", "linear"})
        self._number("weights_sharpness", low=0, low_inclusive=False)
        if self.composition_mode != "add":
            self._fail("composition_mode", "MTL-LoRA needs composition_mode 'add'")
        if self.is_vera:
            self._fail("vera_d", "MTL-LoRA does not combine with VeRA")
