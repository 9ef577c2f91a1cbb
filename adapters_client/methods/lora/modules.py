"""LoRA and (IA)^3 modules; parameter names (lora_A, lora_B) follow the adapters library."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...configs import LoRAConfig
from ...errors import InvalidAdapterConfig


class LoRA(nn.Module):
    """Low-rank update: x @ A^T @ B^T * alpha / r, added to the layer output."""

    composition_mode = "add"

    def __init__(self, in_features: int, out_features: int, config: LoRAConfig, groups: int = 1):
        super().__init__()
        if config.use_dora or config.vera_d is not None or config.vera_b is not None or config.use_gating:
            raise InvalidAdapterConfig("DoRA, VeRA and gated LoRA are not supported by the engine", field="use_dora")
        self.r = config.r
        self.scaling = config.alpha / config.r
        self.dropout = nn.Dropout(config.dropout) if config.dropout > 0 else nn.Identity()
        self.lora_A = nn.Parameter(torch.zeros(config.r * groups, in_features))
        self.lora_B = nn.Parameter(torch.zeros(out_features, config.r))
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        with torch.no_grad():
            if config.init_weights == "lora":
                nn.init.kaiming_uniform_(self.lora_A, a=math.sqrt(5))
            elif config.init_weights == "bert":
                nn.init.normal_(self.lora_A, std=0.02)
                nn.init.normal_(self.lora_B, std=0.02)
            elif config.init_weights == "ia3":
                nn.init.ones_(self.lora_A)
                nn.init.ones_(self.lora_B)
            else:
                raise InvalidAdapterConfig(f"init_weights {config.init_weights!r} is not supported for LoRA",
                                           field="init_weights")

    @property
    def delta_w(self) -> torch.Tensor:
        return self.lora_B @ self.lora_A

    def forward(self, hidden, layer_input):
        x = layer_input if hidden is None else hidden
        return self.dropout(x) @ self.lora_A.t() @ self.lora_B.t() * self.scaling

    def combine(self, output, delta):
        return output + delta

    def merge_into(self, weight, delta_w):
        return weight + delta_w * self.scaling

    def unmerge_from(self, weight, delta_w):
        return weight - delta_w * self.scaling


class IA3(nn.Module):
    """(IA)^3: the layer output is scaled element-wise by a learned vector (times alpha)."""

    composition_mode = "scale"

    def __init__(self, in_features: int, out_features: int, config: LoRAConfig, groups: int = 1):
        super().__init__()
        if config.use_gating or config.dropout > 0:
            raise InvalidAdapterConfig("(IA)^3 supports neither gating nor dropout", field="dropout")
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

    @property
    def delta_w(self) -> torch.Tensor:
        return self.lora_B

    def forward(self, hidden, layer_input):
        vector = self.lora_B.view(1, 1, -1)
        scaled = vector if hidden is None else hidden * vector
        return scaled * self.scaling

    def combine(self, output, delta):
        return output * delta

    def merge_into(self, weight, delta_w):
        return weight * (delta_w * self.scaling)

    def unmerge_from(self, weight, delta_w):
        return weight / (delta_w * self.scaling)


def make_lora(in_features: int, out_features: int, config: LoRAConfig, groups: int = 1) -> nn.Module:
    return (IA3 if config.composition_mode == "scale" else LoRA)(in_features, out_features, config, groups)
