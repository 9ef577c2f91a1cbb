"""LoRA / (IA)^3 on a fused q/k/v projection (GPT-2's ``c_attn``), with the adapters library's weight layout.

lora_A is (r * n, in) and lora_B is (out / 3 * n, r) for the n enabled matrices; the update of each enabled
third of the output is computed group-wise and the disabled thirds are left unchanged.
"""

from __future__ import annotations

import torch
from torch.nn import functional as F

from ...composition import AdapterCompositionBlock
from ...errors import InvalidAdapterConfig, InvalidComposition
from ...hooks import note_ran
from .layer import LoRALayer, record_gate, refuse_gated_merge
from .modules import gate_of, make_lora
from .mtl import check_mtl_arch

_MATRICES = ("q", "k", "v")


class MergedQKVLoRALayer(LoRALayer):
    """``loras`` on the fused projection; only a single active adapter is supported (as in the library)."""

    def __init__(self, engine, module, layer_idx: int, location: str = "selfattn", attn_key=None, path: str = ""):
        super().__init__(engine, module, layer_idx, location, attn_key, path=path)
        self.enabled: dict = {}

    def add(self, name: str, config) -> bool:
        if not config.selfattn_lora or self.layer_idx in config.leave_out:
            return False
        enabled = [m in config.attn_matrices for m in _MATRICES]
        groups = sum(enabled)
        if groups == 0:
            return False
        if getattr(config, "architecture", "lora") == "mtl_lora":
            check_mtl_arch(self.engine)
            # adapters 1.3.0 builds it but its grouped conv1d fails on the 3-D lora_B in the forward pass
            raise InvalidAdapterConfig(f"MTL-LoRA on the fused q/k/v projection {self.path} is not supported (the "
                                       "adapters library fails on it in the forward pass); adapt the other "
                                       "projections (selfattn_lora=False)", field="selfattn_lora")
        if config.use_dora or config.is_vera:
            # the adapters library 1.3.0 fails on both here (DoRA when adding, VeRA in the forward pass)
            variant = "DVoRA" if config.use_dora and config.is_vera else ("DoRA" if config.use_dora else "VeRA")
            field = "use_dora" if config.use_dora else "vera_d"
            raise InvalidAdapterConfig(f"{variant} on the fused q/k/v projection {self.path} is not supported "
                                       "(as in the adapters library)", field=field)
        lora = make_lora(self.in_features, self.out_features // 3 * groups, config, groups=groups)
        self.adapters[name] = lora.to(self.module.weight.device)
        mask = torch.tensor(enabled).repeat_interleave(self.out_features // 3)
        self.enabled[name] = (mask, groups)
        return True

    def _pad(self, name: str, values: torch.Tensor, fill: float) -> torch.Tensor:
        mask, _ = self.enabled[name]
        result = values.new_full((*values.shape[:-1], self.out_features), fill)
        result[..., mask.to(values.device)] = values
        return result

    def _delta_w(self, name: str) -> torch.Tensor:
        """(in, out) weight update (additive) or (1, out) factor (scale), in Conv1D layout."""
        lora = self.adapters[name]
        _, groups = self.enabled[name]
        if lora.composition_mode == "scale":
            return self._pad(name, lora.lora_B.view(1, -1), 1.0)
        delta = F.conv1d(lora.lora_A.unsqueeze(0), lora.lora_B.unsqueeze(-1), groups=groups).squeeze(0)
        return self._pad(name, delta.t(), 0.0)

    def merge(self, name: str) -> None:
        if name not in self.adapters or self.merged == name:
            return
        refuse_gated_merge(self.adapters[name], name)
        if self.merged:
            raise InvalidComposition(f"LoRA {self.merged!r} is already merged; call reset_adapter() first")
        self._apply(name, invert=False)
        self.merged = name

    def reset(self) -> None:
        if self.merged:
            self._apply(self.merged, invert=True)
            self.merged = None

    def _apply(self, name: str, invert: bool) -> None:
        lora = self.adapters[name]
        delta = self._delta_w(name)
        weight = self.module.weight
        with torch.no_grad():
            if self.transposed is False:  # an nn.Linear stores (out, in)
                delta = delta.t()
            if lora.composition_mode == "scale":
                factor = delta * lora.scaling
                weight.data = weight.data / factor if invert else weight.data * factor
                bias = getattr(self.module, "bias", None)
                if bias is not None:
                    vector = factor.reshape(-1)
                    bias.data = bias.data / vector if invert else bias.data * vector
            else:
                update = delta * lora.scaling
                weight.data = weight.data - update if invert else weight.data + update

    def _on_output(self, module, args, output):
        setup = self.engine.setup_for(self)
        if setup is None:
            return None
        note_ran(id(self))
        if self.merged:
            return None
        if isinstance(setup, AdapterCompositionBlock):
            if len(setup) != 1 or not isinstance(setup[0], str):
                raise InvalidComposition(f"{setup!r} cannot be used with LoRA on a fused q/k/v projection")
            setup = setup[0]
        if setup not in self.adapters:
            return None
        lora = self.adapters[setup]
        x = args[0]
        scaling = lora.scaling
        if lora.use_gating:  # one gate per enabled matrix, spread over its third of the output; it replaces alpha
            record_gate(self, setup, lora, x)
            gate = gate_of(lora, x).squeeze(-1).repeat_interleave(self.out_features // 3, dim=-1)
            scaling = self._pad(setup, gate, 1.0).unsqueeze(1)
        if lora.composition_mode == "scale":
            return output * (self._pad(setup, lora.lora_B.view(-1), 1.0) * scaling)
        _, groups = self.enabled[setup]
        after_a = F.linear(lora.dropout(x), lora.lora_A)
        after_b = F.conv1d(after_a.transpose(-2, -1), lora.lora_B.unsqueeze(-1), groups=groups).transpose(-2, -1)
        return output + self._pad(setup, after_b, 0.0) * scaling
