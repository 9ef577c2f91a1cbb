"""LoRA-family modules; parameter names (lora_A, lora_B, m, vera_D, vera_B) follow the adapters library.

LoRA: ``x A^T B^T * alpha / r`` added to the layer output. DoRA (``use_dora``): the adapted output is rescaled
per output row by ``m / ||W + delta_w||`` (W: the frozen weight, out x in; ``delta_w`` unscaled, as in the
library), bias included. VeRA: ``A``/``B`` are frozen random matrices shared by every layer of one adapter
(``shared_parameters.<name>`` under the base model, saved once); each layer trains ``vera_D`` (r x r) and
``vera_B`` (out x out) and adds ``x (vera_B B vera_D A)^T * alpha / r``. DVoRA is VeRA with DoRA's rescaling.
"""

from __future__ import annotations

import math
from typing import Optional

import torch
from torch import nn

from ...configs import LoRAConfig
from ...errors import InvalidAdapterConfig


def _init_pair(lora_A: torch.Tensor, lora_B: torch.Tensor, init_weights: str) -> None:
    """Initialise A and B in place the way ``init_weights`` names (the library's four schemes)."""
    with torch.no_grad():
        if init_weights == "lora":  # A like nn.Linear's default, B zero: the adapter starts as the identity
            nn.init.kaiming_uniform_(lora_A, a=math.sqrt(5))
            nn.init.zeros_(lora_B)
        elif init_weights == "bert":
            nn.init.normal_(lora_A, std=0.02)
            nn.init.normal_(lora_B, std=0.02)
        elif init_weights == "ia3":
            nn.init.ones_(lora_A)
            nn.init.ones_(lora_B)
        elif init_weights == "vera":
            nn.init.kaiming_uniform_(lora_A)
            nn.init.kaiming_uniform_(lora_B)
        else:
            raise InvalidAdapterConfig(f"init_weights {init_weights!r} is not supported for LoRA",
                                       field="init_weights")


class _Additive(nn.Module):
    """What LoRA and VeRA share: scaled additive update, optional DoRA rescaling, merging."""

    composition_mode = "add"

    def _setup_common(self, config: LoRAConfig, out_features: int, weight: Optional[torch.Tensor]) -> None:
        self.use_gating = config.use_gating
        self.r = config.r
        self.scaling = config.alpha / config.r
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.use_dora = config.use_dora
        self._merged_scale = None  # DoRA while merged: the per-row factor folded into the weight
        self._unmerged = None  # DoRA while merged: [weight, bias] tensors the merge replaced
        object.__setattr__(self, "_host", None)  # the adapted Linear (not a submodule: never saved twice)
        if self.use_dora:
            if weight is None or weight.dim() != 2 or weight.shape[0] != out_features:
                raise InvalidAdapterConfig("DoRA needs the adapted (out x in) weight", field="use_dora")
            # magnitude: the row norms of the frozen weight (the library's nn.Linear(1, out) named "m")
            self.m = nn.Linear(1, out_features, bias=False)
            with torch.no_grad():
                self.m.weight.copy_(torch.linalg.norm(weight.detach().float(), dim=1).unsqueeze(1))

    def _scaled(self, delta: torch.Tensor, layer_input: torch.Tensor) -> torch.Tensor:
        """The update times alpha / r, or (gated) times the gate, which replaces that scaling (the library)."""
        return delta * gate_of(self, layer_input) if self.use_gating else delta * self.scaling

    def bind(self, host: nn.Module) -> None:
        """The module this adapter adapts (DoRA reads its current weight; out x in, a Linear)."""
        object.__setattr__(self, "_host", host)

    def _dora_scale(self) -> torch.Tensor:
        weight = self._host.weight
        norm = torch.linalg.norm(weight + self.delta_w.to(weight.dtype), dim=1)
        return self.m.weight.view(-1) / norm

    def combine(self, output, delta):
        if not self.use_dora:
            return output + delta
        return self._dora_scale() * (output + delta)

    # merging: weight' = weight + s * dW; DoRA: weight' = k * (weight + s * dW), bias' = k * bias, with
    # k = m / ||weight + dW|| per row, so the merged layer gives exactly the unmerged output. DoRA keeps the
    # replaced weight and bias tensors (as the library keeps the weight) and puts them back on reset: exact,
    # and no division by k.
    def merge_into(self, weight, delta_w):
        merged = weight + delta_w * self.scaling
        if not self.use_dora:
            return merged
        scale = (self.m.weight.view(-1) / torch.linalg.norm(weight + delta_w, dim=1)).detach()
        self._merged_scale = scale
        self._unmerged = [weight, None]
        return merged * scale.unsqueeze(1)

    def unmerge_from(self, weight, delta_w):
        if self.use_dora:
            return self._unmerged[0]
        return weight - delta_w * self.scaling

    def merge_bias(self, bias):
        if not self.use_dora:
            return bias
        self._unmerged[1] = bias
        return bias * self._merged_scale

    def unmerge_bias(self, bias):
        if not self.use_dora:
            return bias
        original = self._unmerged[1]
        self._merged_scale = self._unmerged = None
        return original


class LoRA(_Additive):
    """Low-rank update: x @ A^T @ B^T * alpha / r, added to the layer output (DoRA: then rescaled)."""

    def __init__(self, in_features: int, out_features: int, config: LoRAConfig, groups: int = 1,
                 weight: Optional[torch.Tensor] = None):
        super().__init__()
        if config.is_vera:
            raise InvalidAdapterConfig("VeRA configs build Vera modules, not LoRA", field="vera_d")
        self._setup_common(config, out_features, weight)
        self.lora_A = nn.Parameter(torch.zeros(config.r * groups, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, config.r))
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        _init_pair(self.lora_A, self.lora_B, config.init_weights)
        add_gate(self, in_features, config, groups)

    @property
    def delta_w(self) -> torch.Tensor:
        return self.lora_B @ self.lora_A

    def forward(self, hidden, layer_input):
        x = layer_input if hidden is None else hidden
        return self._scaled(self.dropout(x) @ self.lora_A.t() @ self.lora_B.t(), layer_input)


class VeraShared(nn.Module):
    """One VeRA adapter's frozen random A (r x in) and B (out x r), shared by all of its layers.

    Kept as buffers: nothing trains them (the library freezes them too) and every layer's module lists them
    in its state dict, so saving writes them once (under ``shared_parameters.<name>``, the shortest key) and
    averaging adapters averages them like the library. ``users`` counts the Vera modules holding it.
    """

    def __init__(self, a_shape: tuple, b_shape: tuple, config: LoRAConfig):
        super().__init__()
        self.register_buffer("lora_A", torch.zeros(a_shape))
        self.register_buffer("lora_B", torch.zeros(b_shape))
        if config.init_weights_seed:  # the library reseeds only for a truthy seed
            torch.manual_seed(config.init_weights_seed)
        _init_pair(self.lora_A, self.lora_B, config.init_weights)
        self.users = 0


def shared_vera(base_model: nn.Module, name: str, a_shape: tuple, b_shape: tuple, config: LoRAConfig,
                like: torch.Tensor) -> VeraShared:
    """Adapter ``name``'s VeraShared under ``base_model.shared_parameters`` (created by its first layer)."""
    store = getattr(base_model, "shared_parameters", None)
    if store is None:
        store = nn.ModuleDict()
        base_model.add_module("shared_parameters", store)
    shared = store[name] if name in store else None
    if shared is None:
        shared = VeraShared(a_shape, b_shape, config).to(device=like.device, dtype=like.dtype)
        store[name] = shared
    elif tuple(shared.lora_A.shape) != tuple(a_shape) or tuple(shared.lora_B.shape) != tuple(b_shape):
        raise InvalidAdapterConfig(
            f"VeRA shares one A {tuple(shared.lora_A.shape)} and B {tuple(shared.lora_B.shape)} across layers; a "
            f"projection needing A {tuple(a_shape)} and B {tuple(b_shape)} cannot use it (choose projections of "
            "one shape, e.g. self-attention only)", field="intermediate_lora")
    return shared


def drop_unused_shared(base_model: nn.Module, name: str) -> None:
    """Remove adapter ``name``'s VeraShared once no layer holds it."""
    store = getattr(base_model, "shared_parameters", None)
    if store is not None and name in store and store[name].users <= 0:
        del store[name]


class Vera(_Additive):
    """VeRA (and DVoRA with ``use_dora``): x (vera_B B vera_D A)^T * alpha / r, A/B frozen and shared."""

    def __init__(self, in_features: int, out_features: int, config: LoRAConfig, shared: VeraShared,
                 weight: Optional[torch.Tensor] = None):
        super().__init__()
        if not config.is_vera:
            raise InvalidAdapterConfig("a Vera module needs vera_d and vera_b", field="vera_d")
        self._setup_common(config, out_features, weight)
        self.vera_D = nn.Parameter(torch.diag(torch.full((config.r,), float(config.vera_d))))
        self.vera_B = nn.Parameter(torch.diag(torch.full((out_features,), float(config.vera_b))))
        self.shared = shared  # a submodule: its buffers follow .to() and appear in this module's state dict
        shared.users += 1
        add_gate(self, in_features, config)

    def release(self) -> Optional[int]:
        """Called when this module leaves its layer; the shared A/B's remaining users."""
        self.shared.users -= 1
        return self.shared.users

    @property
    def delta_w(self) -> torch.Tensor:
        return self.vera_B @ self.shared.lora_B @ self.vera_D @ self.shared.lora_A

    def forward(self, hidden, layer_input):
        x = layer_input if hidden is None else hidden
        x = self.dropout(x) @ self.shared.lora_A.t() @ self.vera_D.t() @ self.shared.lora_B.t() @ self.vera_B.t()
        return self._scaled(x, layer_input)


class IA3(nn.Module):
    """(IA)^3: the layer output is scaled element-wise by a learned vector (times alpha)."""

    composition_mode = "scale"

    def __init__(self, in_features: int, out_features: int, config: LoRAConfig, groups: int = 1):
        super().__init__()
        if config.dropout > 0:
            raise InvalidAdapterConfig("(IA)^3 does not support dropout (the library refuses it too)", field="dropout")
        self.use_gating = config.use_gating
        self.scaling = config.alpha
        self.lora_B = nn.Parameter(torch.zeros(out_features, 1))
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        with torch.no_grad():
            if config.init_weights == "bert":
                nn.init.normal_(self.lora_B, std=0.02)
            elif config.init_weights == "ia3":
                nn.init.ones_(self.lora_B)
            elif config.init_weights != "lora":
                raise InvalidAdapterConfig(f"init_weights {config.init_weights!r} is not supported for (IA)^3",
                                           field="init_weights")
        add_gate(self, in_features, config, groups)

    @property
    def delta_w(self) -> torch.Tensor:
        return self.lora_B

    def forward(self, hidden, layer_input):
        vector = self.lora_B.view(1, 1, -1)
        scaled = vector if hidden is None else hidden * vector
        if self.use_gating:  # the gate replaces alpha (the library)
            return scaled * gate_of(self, layer_input)
        return scaled * self.scaling

    def combine(self, output, delta):
        return output * delta

    def merge_into(self, weight, delta_w):
        return weight * (delta_w * self.scaling)

    def unmerge_from(self, weight, delta_w):
        return weight / (delta_w * self.scaling)


def add_gate(module: nn.Module, in_features: int, config: LoRAConfig, heads: int = 1) -> None:
    """Gated LoRA / (IA)^3 / VeRA (``use_gating``): ``gate``, a Linear from the projection's input to one value
    per head (a fused q/k/v projection: one per enabled matrix), weight drawn from N(0, 0.02) (the library)."""
    if config.use_gating:
        module.gate = nn.Linear(in_features, heads)
        nn.init.normal_(module.gate.weight, std=0.02)


def gate_of(module: nn.Module, layer_input: torch.Tensor) -> torch.Tensor:
    """(batch, heads, 1): the sigmoid of the gate averaged over the sequence (padding included, as the library;
    the placeholder rows DistilBERT's prefix route puts in front of a projection's input are not part of it)."""
    from ..prefix_tuning.projections import placeholder_rows

    skip = placeholder_rows(layer_input)
    if skip:
        layer_input = layer_input[:, skip:]
    return torch.sigmoid(module.gate(layer_input)).mean(dim=1).unsqueeze(-1)


def make_lora(in_features: int, out_features: int, config: LoRAConfig, groups: int = 1,
              weight: Optional[torch.Tensor] = None, shared: Optional[VeraShared] = None) -> nn.Module:
    """The module for ``config``: MTL-LoRA, (IA)^3, VeRA/DVoRA (needs ``shared``) or LoRA/DoRA (DoRA needs
    ``weight``, the adapted layer's out x in weight)."""
    if getattr(config, "architecture", "lora") == "mtl_lora":  # MTL-LoRA (methods/lora/mtl.py)
        from .mtl import MTLLoRA

        if groups != 1:
            raise InvalidAdapterConfig("MTL-LoRA on a fused q/k/v projection is not supported", field="selfattn_lora")
        return MTLLoRA(in_features, out_features, config)
    if config.composition_mode == "scale":
        if config.use_dora or config.is_vera:
            raise InvalidAdapterConfig("(IA)^3 supports neither DoRA nor VeRA", field="composition_mode")
        return IA3(in_features, out_features, config, groups)
    if config.is_vera:
        if groups != 1:
            raise InvalidAdapterConfig("VeRA on a fused q/k/v projection is not supported", field="vera_d")
        return Vera(in_features, out_features, config, shared, weight=weight)
    return LoRA(in_features, out_features, config, groups, weight=weight)
