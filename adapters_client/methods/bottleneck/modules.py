"""Bottleneck adapter modules; parameter names follow the adapters library so checkpoints interchange."""

from __future__ import annotations

import math

import torch
from torch import nn

from ...configs import BnConfig
from ...weights import init_overwritten
from .phm import PHMLayer, check_phm_config


class Activation(nn.Module):
    """A parameter-free activation chosen by name (transformers' names, plus "leakyrelu")."""

    def __init__(self, name: str):
        super().__init__()
        from transformers.activations import get_activation

        name = name.lower()
        self.name = name
        self.f = nn.functional.leaky_relu if name in ("leakyrelu", "leaky_relu") else get_activation(name)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


def bert_init(module: nn.Module) -> None:
    """Normal(0, 0.02) weights and zero biases for linear layers; identity for layer norms."""
    if isinstance(module, nn.Linear):
        nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if module.bias is not None:
            nn.init.zeros_(module.bias)
    elif isinstance(module, nn.LayerNorm):
        nn.init.ones_(module.weight)
        nn.init.zeros_(module.bias)


def drop_path(x: torch.Tensor, p: float) -> torch.Tensor:
    """Stochastic depth per sample: each row of ``x`` (dim 0) is zeroed with probability ``p`` and the kept rows
    are divided by ``1 - p`` (so the expectation is unchanged); ``p = 1`` drops every row. Training only: the
    caller skips it in eval mode, where it is the identity."""
    keep = 1.0 - p
    mask = torch.empty((x.shape[0],) + (1,) * (x.dim() - 1), dtype=x.dtype, device=x.device).bernoulli_(keep)
    if keep > 0.0:
        mask = mask / keep
    return x * mask


class BottleneckAdapter(nn.Module):
    """Down-projection, activation, up-projection, scaling; sequential or parallel placement."""

    def __init__(self, name: str, input_size: int, down_size: int, config: BnConfig):
        super().__init__()
        # (inv_adapter: the invertible block is model-level, methods/invertible; this module is the same)
        self.name = name
        self.config = config
        self.is_parallel = config.is_parallel
        down_size = max(1, down_size)
        if config.phm_layer:  # Compacter: PHM layers instead of the two Linears (methods/bottleneck/phm.py)
            check_phm_config(config, input_size, down_size)
        layers: list[nn.Module] = []
        if config.ln_before:
            # the adapters library also registers this LN as ``adapter_norm_before`` (a second name for the
            # same tensors); one name keeps state dicts free of shared tensors (safetensors, HF Trainer)
            layers.append(nn.LayerNorm(input_size))
        layers += [PHMLayer(name, input_size, down_size, "down", config) if config.phm_layer
                   else nn.Linear(input_size, down_size), Activation(config.non_linearity)]
        self.adapter_down = nn.Sequential(*layers)
        self.adapter_up = (PHMLayer(name, down_size, input_size, "up", config) if config.phm_layer
                           else nn.Linear(down_size, input_size))
        if config.scaling == "learned":
            self.scaling = nn.Parameter(torch.ones(1))
        elif config.scaling == "channel":
            self.scaling = nn.Parameter(torch.ones(input_size))
        else:
            self.scaling = float(config.scaling)
        if config.ln_after:
            self.adapter_norm_after = nn.LayerNorm(input_size)
        if config.use_gating:
            self.gate = nn.Linear(input_size, 1)
        self.dropout = nn.Dropout(p=config.dropout)
        # stochastic depth (AdapterPlus): the library drops a sequential adapter's branch per sample in training;
        # its parallel adapter builds the drop module but never calls it, so parallel adapters keep p = 0 here
        self.stochastic_depth = 0.0 if config.is_parallel else float(config.stochastic_depth or 0.0)
        self._init_weights(config)

    def _init_weights(self, config: BnConfig) -> None:
        if config.init_weights_seed is not None:
            torch.manual_seed(config.init_weights_seed)
        linears = [m for m in self.adapter_down if isinstance(m, nn.Linear)]
        with torch.no_grad():
            if config.init_weights == "bert":
                self.adapter_down.apply(bert_init)
                self.adapter_up.apply(bert_init)
                if config.use_gating:
                    self.gate.apply(bert_init)
            elif config.init_weights == "mam_adapter":
                for layer in linears:
                    nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5))
                    nn.init.zeros_(layer.bias)
                nn.init.zeros_(self.adapter_up.weight)
                nn.init.zeros_(self.adapter_up.bias)
                if config.use_gating:
                    self.gate.apply(bert_init)
            else:  # houlsby
                for layer in linears + [self.adapter_up]:
                    # trunc_normal_ redraws until every value is in bounds, and under overwritten_init (loading:
                    # the checkpoint replaces these weights) the draws are no-ops: it would never end
                    if not init_overwritten():
                        nn.init.trunc_normal_(layer.weight, mean=0, std=1e-2, a=-2e-2, b=2e-2)
                    nn.init.zeros_(layer.bias)

    def pre_forward(self, hidden, input_tensor, layer_norm, query_before_ln: bool | None = None):
        """(adapter input, fusion query, adapter residual) from the sub-layer output and its residual input."""
        if self.is_parallel:
            return input_tensor, input_tensor, input_tensor
        config = self.config
        query = hidden if query_before_ln else None
        residual = hidden if config.residual_before_ln is True else None
        if config.original_ln_before and input_tensor is not None:
            hidden = hidden + input_tensor
            if config.residual_before_ln == "post_add":
                residual = hidden
            if layer_norm is not None:
                hidden = layer_norm(hidden)
        if not config.residual_before_ln:
            residual = hidden
        if query_before_ln is False:
            query = hidden
        return hidden, query, residual

    def forward(self, x, residual):
        """Returns (output, down, up, gate)."""
        down = self.adapter_down(x)
        up = self.adapter_up(down)
        if self.stochastic_depth > 0.0 and self.training:
            up = drop_path(up, self.stochastic_depth)
        up = up * self.scaling
        output = self.dropout(up)
        gate = None
        if self.config.use_gating:
            gate = torch.sigmoid(self.gate(x)).mean(dim=1).unsqueeze(-1)
            output = output * gate
        if self.is_parallel:
            if self.config.ln_after:
                output = self.adapter_norm_after(output)
            return output, down, up, gate
        if self.config.adapter_residual_before_ln:
            output = output + residual
        if self.config.ln_after:
            output = self.adapter_norm_after(output)
        if not self.config.adapter_residual_before_ln:
            output = output + residual
        return output, down, up, gate

    def post_forward(self, hidden, input_hidden, input_tensor, layer_norm):
        """Residual connection and layer norm of the host after the adapter(s)."""
        if self.is_parallel:
            hidden = hidden + input_hidden
        if self.config.original_ln_after and input_tensor is not None:
            hidden = hidden + input_tensor
            if layer_norm is not None:
                hidden = layer_norm(hidden)
        return hidden


class FusionLayer(nn.Module):
    """AdapterFusion: attention of the layer output (query) over the adapters' up-projections."""

    def __init__(self, config, size: int, dropout_prob: float):
        super().__init__()
        self.config = config
        self.dropout = nn.Dropout(dropout_prob)
        if not (config.query or config.key or config.value):
            self.dense = nn.Linear(size, 1)
        if config.query:
            self.query = nn.Linear(size, size)
            self.query.apply(bert_init)
        if config.key:
            self.key = nn.Linear(size, size)
            self.key.apply(bert_init)
        if config.value:
            self.value = nn.Linear(size, size, bias=False)
            self.value.apply(bert_init)
            if config.value_initialized:
                with torch.no_grad():
                    self.value.weight.fill_(1e-6).fill_diagonal_(1.0)
        self.temperature = 50.0 if config.temperature else 1.0
        self.reduction = self.temperature / 1000.0
        from .fusion import default_mode

        # eval-mode computation (fusion.py): "library_order" (default), "folded" (fastest) or "off"
        self.fold_mode = default_mode()

    def clear_folded(self) -> None:
        """Drops the folded matrices of the eval-mode path (fusion.py). They are rebuilt by themselves when
        a weight changes through PyTorch (new tensor, in-place version); writes through ``param.data`` are
        not seen by the version counters: call this after them."""
        self.__dict__.pop("_fold_cache", None)

    def forward(self, query, key, value, residual, project_after_mixing: bool = False):
        """``project_after_mixing``: the value matrix applied once to the probability-weighted sum of the
        values instead of to each adapter's value (the same result: it is linear without bias)."""
        config = self.config
        if config.residual_before:
            value = value + residual[:, :, None, :]
        value_first = config.value and config.value_before_softmax and not project_after_mixing
        query_layer = self.query(query) if config.query else query
        key_layer = self.key(key) if config.key else key
        value_layer = self.value(value) if value_first else value
        scores = torch.matmul(query_layer.unsqueeze(2), key_layer.transpose(-2, -1)).squeeze(2)
        probs = torch.softmax(self.dropout(scores) / self.temperature, dim=-1)
        if self.training:
            self.temperature = max(self.temperature - self.reduction, 1.0)
        context = torch.matmul(probs.unsqueeze(2), value_layer).squeeze(2)
        if config.value and not value_first:
            context = self.value(context)
        if not config.residual_before:
            context = context + residual
        return context, probs
