"""AdapterFusion in eval mode: the same result with less work (``FusionLayer.fold_mode``).

- ``"folded"`` (the default): the fusion's projections folded into the adapters' up-projections (below):
  hidden x bottleneck products instead of the query projection and the hidden x hidden key and value
  projections of every adapter. Algebraically exact; in float32 it differs from the library's order of
  operations by rounding only (7e-7 at most on the golden fuse cases, every architecture, both
  transformers lines). Fusion scores far above ten (very sharp attention over the adapters) let the
  softmax magnify any float32 rounding, the library's own included: there the two orders can differ by
  1e-5 or more, and ``library_order`` reproduces the library's rounding.
- ``"library_order"``: the query, keys, scores and probabilities are computed exactly as the ``adapters``
  library computes them (same operations, same rounding); only the fused adapters' down- and
  up-projections run (not their residual, layer norms and outputs, which the fusion never reads), and
  the value matrix V is applied once to the probability-weighted sum of the up-projections:
  ``sum_i p_i V up_i = V sum_i p_i up_i`` (V is linear without bias; the library's own
  ``value_before_softmax=False`` formula). One hidden x hidden product per adapter less.
- ``"off"``: the unfolded computation (every adapter's full forward, V applied per adapter).

``ADAPTERS_CLIENT_FUSE_MODE`` sets the mode of fusion layers created afterwards; ``set_fuse_mode(model,
mode)`` sets it on a model's existing fusion layers. Training mode always takes the unfolded path.

The fold. The fusion layer sees, for each fused adapter i, its up-projection ``up_i = s_i * (U_i d_i +
b_i)`` (``d_i``: the adapter's down-projection after its activation, ``s_i``: its scaling; the adapter's
residual, gate and layer norms are not part of it). With ``q = Q x + b_q``, ``k_i = K up_i + b_k``,
``v_i = V up_i``:

    score_i = q . k_i = x^T (Q^T K s_i U_i) d_i + (U_i^T s_i K^T b_q) . d_i + x^T Q^T c_i + b_q . c_i,
              with c_i = K s_i b_i + b_k
    context = sum_i p_i v_i = sum_i p_i (V s_i U_i) d_i + sum_i p_i V s_i b_i        (p = softmax(score / T))

A projection the config disables is the identity; ``value_before_softmax`` changes nothing (V is linear).
``residual_before`` adds the residual r to the values (in the library to the keys too: the two are the
same tensor there); a key shift common to all adapters adds the same q . K r to every score, which the
softmax ignores, and the values give ``sum_i p_i V(up_i + r) = sum_i p_i V up_i + V r`` (the
probabilities sum to one), so only V r remains a hidden x hidden product.

The folded matrices are constants: used only when no parameter they come from needs a gradient
(``torch.no_grad``, ``inference_mode``, or frozen adapters and fusion). They are cached on the fusion
layer and rebuilt when any tensor they come from changes (another tensor object, data pointer, dtype,
device, or in-place version: optimizer steps, ``load_state_dict``, ``copy_`` under no_grad,
``nn.init``). In-place writes through ``param.data`` bypass PyTorch's version counter: call
``FusionLayer.clear_folded()`` after them.
"""

from __future__ import annotations

import os
from typing import NamedTuple, Optional

import torch
from torch import nn

from ...errors import InvalidAdapterConfig

MODES = ("library_order", "folded", "off")
MODE_ENV = "ADAPTERS_CLIENT_FUSE_MODE"

# tests switch this off to compare with the unfolded computation
ENABLED = True


def default_mode() -> str:
    """The mode of a new fusion layer: ``ADAPTERS_CLIENT_FUSE_MODE`` or ``"folded"``."""
    return _checked(os.environ.get(MODE_ENV) or "folded", MODE_ENV)


def set_fuse_mode(model: nn.Module, mode: str) -> int:
    """Sets ``mode`` on every fusion layer of ``model``; returns how many there are."""
    from .modules import FusionLayer

    mode = _checked(mode, "mode")
    layers = [m for m in model.modules() if isinstance(m, FusionLayer)]
    for layer in layers:
        layer.fold_mode = mode
    return len(layers)


def _checked(mode: str, field: str) -> str:
    if mode not in MODES:
        raise InvalidAdapterConfig(f"unknown fusion mode {mode!r}; expected one of {', '.join(MODES)}",
                                   field=field)
    return mode


class Folded(NamedTuple):
    key: tuple                 # what the matrices were computed from (see _signature)
    down_weight: Optional[torch.Tensor]  # (hidden, S): the adapters' down-projections side by side, or None
    down_bias: Optional[torch.Tensor]    # (S,)
    score_weight: torch.Tensor  # (hidden, S + N): query side of the scores, then one column per adapter
    score_bias: torch.Tensor    # (S + N,)
    segments: torch.Tensor      # (S, N): 1 where bottleneck unit j belongs to adapter i
    owner: torch.Tensor         # (S,): the adapter of each bottleneck unit (index into N)
    value_weight: torch.Tensor  # (S + N, hidden): the values' rows, then one constant row per adapter
    residual_value: Optional[torch.Tensor]  # (hidden, hidden) = V^T when residual_before with a value matrix
    joint_weight: Optional[torch.Tensor]  # (hidden, 2S + N) = [down_weight | score_weight]: when query is x
    joint_bias: Optional[torch.Tensor]


def fused_forward(fusion: nn.Module, adapters: list, x: torch.Tensor, query: torch.Tensor,
                  residual: torch.Tensor) -> Optional[tuple]:
    """``(output, probs)`` of ``fusion`` over ``adapters`` run on ``x``, as ``FusionLayer.forward`` gives
    them for the adapters' up-projections; None when the unfolded computation must run."""
    mode = getattr(fusion, "fold_mode", "library_order") if ENABLED else "off"
    if mode == "off" or not _eligible(fusion, adapters, x, query, residual):
        return None
    if mode == "folded" and _foldable(fusion, adapters):
        folded = _folded(fusion, adapters, x)
        if folded is not None:
            return _run_folded(fusion, folded, adapters, x, query, residual)
    ups = torch.stack([a.adapter_up(a.adapter_down(x)) * a.scaling for a in adapters]).permute(1, 2, 0, 3)
    return fusion(query, ups, ups, residual, project_after_mixing=True)


def _run_folded(fusion, folded: "Folded", adapters, x, query, residual):
    hidden = x.shape[-1]
    rows = x.reshape(-1, hidden)
    if folded.joint_weight is not None and query is x:  # one pass over x: down-projections and query side
        width = folded.down_bias.shape[0]
        both = torch.addmm(folded.joint_bias, rows, folded.joint_weight)
        down, projected = adapters[0].adapter_down[-1](both[:, :width]), both[:, width:]
    else:
        if folded.down_weight is not None:
            down = adapters[0].adapter_down[-1](torch.addmm(folded.down_bias, rows, folded.down_weight))
        else:
            down = torch.cat([a.adapter_down(x).reshape(rows.shape[0], -1) for a in adapters], dim=1)
        width = down.shape[1]
        projected = torch.addmm(folded.score_bias, query.reshape(-1, hidden), folded.score_weight)
    scores = torch.addmm(projected[:, width:], projected[:, :width] * down, folded.segments)
    probs = torch.softmax(scores / fusion.temperature, dim=-1)
    mixed = torch.cat([down * probs[:, folded.owner], probs], dim=1)
    base = residual.reshape(-1, hidden)
    if folded.residual_value is not None:
        base = base @ folded.residual_value
    output = torch.addmm(base, mixed, folded.value_weight)
    return output.view(x.shape), probs.view(*x.shape[:-1], len(adapters))


def _eligible(fusion, adapters, x, query, residual) -> bool:
    """Both eval-mode paths: eval mode, plain sequential/parallel adapters without gates."""
    if fusion.training or not adapters or query is None or residual is None:
        return False
    if query.shape != x.shape or residual.shape != x.shape:
        return False
    # a gate is recorded per adapter by the unfolded path
    return not any(adapter.config.use_gating for adapter in adapters)


def _foldable(fusion, adapters) -> bool:
    """The fold: Linear up-projections (not PHM), and no folded parameter that needs a gradient."""
    for adapter in adapters:
        if type(adapter.adapter_up) is not nn.Linear or adapter.adapter_up.bias is None:
            return False
    tensors = _sources(fusion, adapters)
    if any(t.is_inference() for t in tensors):  # no version counter to invalidate the cache with
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in tensors))


def _sources(fusion, adapters) -> list:
    """Every tensor the folded matrices are computed from."""
    tensors = list(fusion.parameters())
    for adapter in adapters:
        tensors += [adapter.adapter_up.weight, adapter.adapter_up.bias]
        if isinstance(adapter.scaling, torch.Tensor):
            tensors.append(adapter.scaling)
        tensors += list(adapter.adapter_down.parameters())  # the down-projections are concatenated
    return tensors


def _signature(fusion, adapters, x) -> tuple:
    # the tensor objects themselves (not their ids): the cache keeps them alive, so a replaced adapter
    # can never be mistaken for the old one
    parts = [x.dtype, x.device, tuple(id(a) for a in adapters), tuple(_scale_key(a) for a in adapters)]
    parts += [(t, t.data_ptr(), t._version, t.dtype, t.device) for t in _sources(fusion, adapters)]
    return tuple(parts)


def _scale_key(adapter):
    return None if isinstance(adapter.scaling, torch.Tensor) else float(adapter.scaling)


def _same(a: tuple, b: tuple) -> bool:
    if len(a) != len(b):
        return False
    for left, right in zip(a, b):
        if isinstance(left, tuple) and isinstance(right, tuple) and left and isinstance(left[0], torch.Tensor):
            if left[0] is not right[0] or left[1:] != right[1:]:
                return False
        elif left != right:
            return False
    return True


def _folded(fusion, adapters, x) -> Optional[Folded]:
    cache = fusion.__dict__.setdefault("_fold_cache", {})
    names = tuple(a.name for a in adapters)
    key = _signature(fusion, adapters, x)
    entry = cache.get(names)
    if entry is not None and _same(entry.key, key):
        return entry
    with torch.inference_mode(False), torch.no_grad():  # ordinary tensors: usable where autograd runs
        entry = _fold(fusion, adapters, x, key)
    cache[names] = entry
    return entry


def _fold(fusion, adapters, x, key) -> Folded:
    config = fusion.config
    device, dtype = x.device, x.dtype
    work = torch.float32 if device.type == "mps" else torch.float64

    def w(t):
        return t.detach().to(device=device, dtype=work)

    q_w = w(fusion.query.weight) if config.query else None
    q_b = w(fusion.query.bias) if config.query else None
    k_w = w(fusion.key.weight) if config.key else None
    k_b = w(fusion.key.bias) if config.key else None
    v_w = w(fusion.value.weight) if config.value else None

    score_cols, score_bias, const_cols, const_bias, value_rows, value_const = [], [], [], [], [], []
    for adapter in adapters:
        up_w, up_b = w(adapter.adapter_up.weight), w(adapter.adapter_up.bias)  # (hidden, b), (hidden,)
        scale = adapter.scaling
        if isinstance(scale, torch.Tensor):  # "learned" (1,) or "channel" (hidden,): per output channel
            scale = w(scale)
            up_w, up_b = up_w * scale[:, None], up_b * scale
        else:
            up_w, up_b = up_w * float(scale), up_b * float(scale)
        key_w = k_w @ up_w if k_w is not None else up_w            # key_i = key_w d_i + key_c
        key_c = k_w @ up_b + k_b if k_w is not None else up_b
        if q_w is not None:                                        # score_i = (x B_i + w_i) . d_i + x e_i + f_i
            score_cols.append(q_w.T @ key_w)
            score_bias.append(key_w.T @ q_b)
            const_cols.append(q_w.T @ key_c)
            const_bias.append(q_b @ key_c)
        else:
            score_cols.append(key_w)
            score_bias.append(torch.zeros(key_w.shape[1], dtype=work, device=device))
            const_cols.append(key_c)
            const_bias.append(torch.zeros((), dtype=work, device=device))
        value_rows.append((v_w @ up_w if v_w is not None else up_w).T)   # v_i = d_i G_i + g_i
        value_const.append(v_w @ up_b if v_w is not None else up_b)

    sizes = [c.shape[1] for c in score_cols]
    owner = torch.repeat_interleave(torch.arange(len(adapters), device=device),
                                    torch.tensor(sizes, device=device))
    segments = nn.functional.one_hot(owner, len(adapters))
    score_weight = torch.cat(score_cols + [torch.stack(const_cols, dim=1)], dim=1)
    score_bias_all = torch.cat(score_bias + [torch.stack(const_bias)])
    value_weight = torch.cat(value_rows + [torch.stack(value_const, dim=0)], dim=0)
    residual_value = v_w.T if config.residual_before and v_w is not None else None

    down_weight = down_bias = None
    if _joint_down(adapters):
        linears = [a.adapter_down[0] for a in adapters]
        down_weight = torch.cat([layer.weight.detach() for layer in linears], dim=0).T
        down_weight = down_weight.to(device=device, dtype=dtype).contiguous()
        down_bias = torch.cat([layer.bias.detach() for layer in linears]).to(device=device, dtype=dtype)

    def out(t):
        return t.to(dtype).contiguous()

    score_weight, score_bias_all = out(score_weight), out(score_bias_all)
    joint_weight = joint_bias = None
    if down_weight is not None:
        joint_weight = torch.cat([down_weight, score_weight], dim=1).contiguous()
        joint_bias = torch.cat([down_bias, score_bias_all])
    return Folded(key, down_weight, down_bias, score_weight, score_bias_all, out(segments), owner,
                  out(value_weight), out(residual_value) if residual_value is not None else None,
                  joint_weight, joint_bias)


def _joint_down(adapters) -> bool:
    """One matrix product for every down-projection: plain Linear + the same activation in each adapter."""
    names = set()
    for adapter in adapters:
        layers = list(adapter.adapter_down)
        if len(layers) != 2 or type(layers[0]) is not nn.Linear or layers[0].bias is None:
            return False
        names.add(getattr(layers[1], "name", None))
    return len(names) == 1 and None not in names
