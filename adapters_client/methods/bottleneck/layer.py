"""One bottleneck position in one layer: hooks around the host modules and composition dispatch."""

from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import torch
from torch import nn
from torch.nn import functional as F

from ...architectures import BottleneckSite, get_path
from ...composition import AdapterCompositionBlock, Average, Fuse, Split
from ...context import ForwardContext, MixedRows, RowAdapters, put_rows, take_rows
from ...errors import HookNotRun, InvalidAdapterConfig, InvalidComposition
from ...hooks import forward_parameters, note_expected, note_ran, target_missing
from ..composable import ComposableLayer, last_name
from .fusion import fused_forward
from .modules import BottleneckAdapter


class BnState(NamedTuple):
    hidden: torch.Tensor
    input_tensor: Optional[torch.Tensor]
    residual: Optional[torch.Tensor]
    layer_norm: Optional[object]
    up: Optional[torch.Tensor] = None
    last: Optional[str] = None


def _first_tensor(output):
    return output[0] if isinstance(output, (tuple, list)) else output


def _hook_free_layer_norm(ln: nn.LayerNorm):
    return lambda x: F.layer_norm(x, ln.normalized_shape, ln.weight, ln.bias, ln.eps)


class BottleneckLayer(ComposableLayer):
    """Holds the ``adapters`` / ``adapter_fusion_layer`` dicts of one site and applies them via hooks."""

    # on post-LN hosts a Parallel batch can be replicated at this site, mid-layer (engine._replication_point)
    replicates_mid_layer = True

    def __init__(self, engine, layer: nn.Module, layer_idx: int, site: BottleneckSite):
        self.engine = engine
        self.layer_idx = layer_idx
        self.site = site
        self.location_key = site.location_key
        self.path = f"{engine.layer_path(layer_idx)}.{site.hidden}"  # from the base model, for errors
        self._check_targets(layer)
        if site.container:
            host = nn.Module()
            layer.add_module(site.attach, host)
        else:
            host = get_path(layer, site.attach, engine.spec.model_type)
        host.add_module("adapters", nn.ModuleDict())
        host.add_module("adapter_fusion_layer", nn.ModuleDict())
        self.adapters: nn.ModuleDict = host.adapters
        self.fusion_layers: nn.ModuleDict = host.adapter_fusion_layer
        self._ln = get_path(layer, site.layer_norm) if site.layer_norm else None
        self._pre_norm = get_path(layer, site.pre_norm) if site.pre_norm else None
        self._fallback: dict = {}
        self._register_hooks(layer)

    def add(self, name: str, config) -> bool:
        """A bottleneck module for adapter ``name`` when ``config`` uses this position in this layer."""
        if not config.get(self.location_key) or self.layer_idx in config.leave_out:
            return False
        if self.engine.spec.library_interface and not config.original_ln_after:
            raise InvalidAdapterConfig(f"original_ln_after=False is not supported on {self.engine.spec.model_type} "
                                       "(the adapters library's plugin interface refuses it too)",
                                       field="original_ln_after")
        hidden = self.engine.hidden_size
        down = int(hidden // config.reduction_factor_for(self.layer_idx))
        self.adapters[name] = BottleneckAdapter(name, hidden, down, config)
        return True

    def remove(self, name: str) -> None:
        del self.adapters[name]

    def _check_targets(self, layer: nn.Module) -> None:
        """HookTargetMissing unless the hooked modules and the residual argument exist in this transformers."""
        arch, site, prefix = self.engine.spec.model_type, self.site, self.engine.layer_path(self.layer_idx)
        get_path(layer, site.hidden, arch)
        source = get_path(layer, site.residual.module, arch)
        params = forward_parameters(source)
        if len(params) <= site.residual.index and not set(site.residual.kwargs) & set(params):
            raise target_missing(arch, f"{prefix}.{site.residual.module}".rstrip("."),
                                 f"its forward takes no residual input {list(site.residual.kwargs)} (it takes {params})")
        for norm in (site.layer_norm, site.pre_norm):
            if norm and not isinstance(get_path(layer, norm, arch), nn.LayerNorm):
                raise target_missing(arch, f"{prefix}.{norm}", "expected an nn.LayerNorm")

    def _register_hooks(self, layer: nn.Module) -> None:
        source = self.site.residual
        get_path(layer, source.module).register_forward_pre_hook(self._capture_residual, with_kwargs=True)
        get_path(layer, self.site.hidden).register_forward_hook(self._on_hidden)
        if self._ln is not None:
            self._ln.register_forward_hook(self._on_layer_norm)

    # --- hooks ---
    def _scratch(self) -> dict:
        """Per-forward, per-thread storage between this site's hooks."""
        forward = ForwardContext.current()
        store = forward.extras.setdefault("bottleneck", {}) if forward is not None else self._fallback
        return store.setdefault(id(self), {})

    def _capture_residual(self, module, args, kwargs):
        source = self.site.residual
        value = args[source.index] if len(args) > source.index else None
        for name in source.kwargs:
            if value is None:
                value = kwargs.get(name)
        self._scratch()["residual"] = value

    def _on_hidden(self, module, args, output):
        scratch = self._scratch()
        residual = scratch.pop("residual", None)
        setup = self.engine.setup_for(self)
        if setup is None:
            return None
        note_ran(id(self))
        if residual is None:
            raise HookNotRun(f"{self.engine.spec.model_type}: the residual input of {self.path} was not seen "
                             f"(its host module was called without it)", module=self.path)
        hidden = _first_tensor(output)
        channels = self.engine.replicate_at_site(self)  # > 1 only on post-LN hosts (planned by the engine)
        if isinstance(setup, MixedRows):
            result = self._finish_rows(hidden, residual, scratch)
        elif self._ln is None:
            result = self._finish_host_adds(setup, hidden, residual)
        elif channels > 1:
            result = self._finish_replicated(setup, hidden, residual, scratch, channels)
        else:
            result = self._finish_post_ln(setup, hidden, residual, scratch)
        if "override" in scratch:  # the host's LayerNorm must take it: proven in _on_layer_norm
            note_expected(("ln", id(self)), f"{self.engine.layer_path(self.layer_idx)}.{self.site.layer_norm}")
        if result is None:
            return None
        if isinstance(output, tuple):
            return (result,) + tuple(output[1:])
        return result

    def _on_layer_norm(self, module, args, output):
        override = self._scratch().pop("override", None)
        if override is not None:
            note_ran(("ln", id(self)))
        if isinstance(override, _RowOverrides):  # a mixed batch: only some rows take the adapter's LN output
            result = output.clone()
            for group, values in override.parts:
                put_rows(result, group, values)
            return result
        return override

    # --- forward ---
    def _compose(self, setup, hidden, residual_input, layer_norm):
        if residual_input is not None and residual_input.shape[0] != hidden.shape[0]:
            factor = hidden.shape[0] // residual_input.shape[0]
            residual_input = residual_input.repeat(factor, *([1] * (residual_input.dim() - 1)))
        state = self.compose(setup, BnState(hidden, residual_input, residual_input, layer_norm), 0)
        return state, (self.adapters[state.last] if state.last is not None else None), residual_input

    def _finish_host_adds(self, setup, hidden, residual_input, compose=None):
        """Pre-LN hosts (GPT-2) add the residual themselves: return the adapter output without it.
        (``compose``: what runs the setup, ``_compose`` by default; a mixed batch passes its batched one.)"""
        pre_norm = _hook_free_layer_norm(self._pre_norm) if self._pre_norm is not None else None
        state, last, residual_input = (compose or self._compose)(setup, hidden, residual_input, pre_norm)
        if last is None:
            return None
        out = last.post_forward(state.hidden, hidden, None, None)
        if not last.config.original_ln_after and residual_input is not None:
            out = out - residual_input
        return out

    def _finish_post_ln(self, setup, hidden, residual_input, scratch, compose=None):
        """Post-LN hosts compute LN(x + residual) after this hook: hand them x, or override the LN output."""
        layer_norm = _hook_free_layer_norm(self._ln)
        state, last, residual_input = (compose or self._compose)(setup, hidden, residual_input, layer_norm)
        if last is None:
            return None
        if last.config.original_ln_after and state.input_tensor is not None:
            return state.hidden + hidden if last.is_parallel else state.hidden
        scratch["override"] = last.post_forward(state.hidden, hidden, state.input_tensor, layer_norm)
        return None

    def _finish_rows(self, hidden, residual_input, scratch):
        """A mixed batch (``adapter_names``): each group of rows whose adapter this site holds goes through
        the single-adapter path on its own rows; the other rows keep the backbone's values. Returns the new
        host output (None: unchanged); rows whose adapter overrides the host's LN output are left in
        ``scratch["override"]`` for ``_on_layer_norm``."""
        rows = RowAdapters.current()
        groups = rows.adapter_groups(hidden.device, self.adapters)
        if len(groups) > 1 and _batchable([self.adapters[g.name] for g in groups]):
            selected, names = rows.selection(hidden.device, self.adapters)
            groups, composes = [selected], [functools.partial(self._compose_rows, names)]
        else:
            composes = [None] * len(groups)
        result, overrides = None, []
        for group, compose in zip(groups, composes):
            setup = rows.singles[group.name] if group.name is not None else None
            part_hidden, part_residual = take_rows(hidden, group), take_rows(residual_input, group)
            if self._ln is None:
                out = self._finish_host_adds(setup, part_hidden, part_residual, compose)
            else:
                part_scratch: dict = {}
                out = self._finish_post_ln(setup, part_hidden, part_residual, part_scratch, compose)
                if out is None and "override" in part_scratch:
                    overrides.append((group, part_scratch["override"]))
                    continue
            if out is None:
                continue
            if group.span == (0, hidden.shape[0]):
                result = out  # every row changed here
                continue
            if result is None:
                result = hidden.clone()
            put_rows(result, group, out)
        if overrides:
            scratch["override"] = _RowOverrides(overrides)
        return result

    def _compose_rows(self, names: list, setup, hidden, residual_input, layer_norm):
        """``_compose`` for rows of several adapters of one plain config (``_batchable``): the config's pre- and
        post-processing run once on all rows, the adapters as batched matmuls with each row's own weights."""
        modules = [self.adapters[name] for name in names]
        last = modules[0]
        x, _, residual = last.pre_forward(hidden, residual_input, layer_norm)
        down_w = torch.stack([m.adapter_down[0].weight for m in modules]).transpose(1, 2)
        down_b = torch.stack([m.adapter_down[0].bias for m in modules]).unsqueeze(1)
        up_w = torch.stack([m.adapter_up.weight for m in modules]).transpose(1, 2)
        up_b = torch.stack([m.adapter_up.bias for m in modules]).unsqueeze(1)
        down = last.adapter_down[1](torch.baddbmm(down_b, x, down_w))
        up = torch.baddbmm(up_b, down, up_w)
        if last.scaling != 1.0:
            up = up * last.scaling
        output = up if last.is_parallel else up + residual  # eval: no dropout; no LN after, no gate
        state = BnState(output, residual_input, residual, layer_norm, up, last.name)
        return state, last, residual_input

    def _finish_replicated(self, setup, hidden, residual_input, scratch, channels: int):
        """The Parallel batch is replicated here: the host's LN runs on its original batch and its output is
        overridden by the replicated result (the residual and LN of the host, applied to ``channels`` copies)."""
        layer_norm = _hook_free_layer_norm(self._ln)
        source = hidden.repeat(channels, *([1] * (hidden.dim() - 1)))
        state, last, residual_input = self._compose(setup, source, residual_input, layer_norm)
        if last is not None:
            scratch["override"] = last.post_forward(state.hidden, source, state.input_tensor, layer_norm)
        else:
            scratch["override"] = layer_norm(source + residual_input if residual_input is not None else source)
        return None

    # --- composition (the blocks are dispatched by ComposableLayer) ---
    def extra_handlers(self) -> dict:
        return {Fuse: self._fuse, Split: self._split}

    def map_state(self, state: BnState, fn) -> BnState:
        return _map_state(state, fn)

    def batch_size(self, state: BnState) -> int:
        return state.hidden.shape[0]

    def compose_absent(self, name, state: BnState):
        raise InvalidComposition(f"invalid adapter setup {name!r}")

    def compose_other(self, block, state: BnState, lvl: int):
        raise InvalidComposition(f"invalid adapter setup {block!r}")

    def before_block(self, setup, state: BnState) -> BnState:
        name = setup.first() if isinstance(setup, AdapterCompositionBlock) else setup
        hidden, _, residual = self.adapters[name].pre_forward(state.hidden, state.input_tensor, state.layer_norm)
        return state._replace(hidden=hidden, residual=residual)

    before_adapter = before_block

    def compose_single(self, name: str, state: BnState) -> BnState:
        output, _, up, gate = self.adapters[name](state.hidden, state.residual)
        if gate is not None:
            self.engine.record_gate(name, self.layer_idx, self.location_key, gate)
        return state._replace(hidden=output, up=up, last=name)

    def join_parallel(self, state: BnState, parts: list) -> BnState:
        hidden = torch.cat([o.hidden for o in parts], dim=0)
        up = None if parts[0].up is None else torch.cat([o.up for o in parts], dim=0)
        # children leave input_tensor as it was; residual is recomputed by whatever follows a Parallel
        return state._replace(hidden=hidden, up=up, last=last_name(parts))

    def join_batch_split(self, state: BnState, parts: list) -> BnState:
        return _concat(parts, dim=0)

    def join_average(self, block: Average, state: BnState, parts: list) -> BnState:
        children = [p for p in parts if p is not None]
        if not children:
            return state
        hidden = self.weighted_mean(block, [c.hidden for c in children], like=state.hidden)
        return state._replace(hidden=hidden, up=children[0].up, last=children[-1].last)

    def _fuse(self, block: Fuse, state: BnState, lvl: int) -> BnState:
        if block.name not in self.fusion_layers:
            raise InvalidComposition(f"no fusion layer {block.name!r}; call add_adapter_fusion first")
        config = self.engine.fusion_config(block.name)
        last = block.last()
        hidden, query, residual = self.adapters[last].pre_forward(
            state.hidden, state.input_tensor, state.layer_norm, query_before_ln=config.query_before_ln
        )
        state = state._replace(hidden=hidden, residual=residual)
        fusion = self.fusion_layers[block.name]
        # eval mode: only what the fusion reads, in the library's order or folded (fusion.py, fold_mode)
        members = [self.adapters[c] for c in block if c in self.adapters] if all(
            isinstance(c, str) for c in block) else None
        folded = fused_forward(fusion, members, hidden, query, residual) if members else None
        if folded is None:
            children = [s for s in (self.compose_child(c, state, lvl) for c in block) if s is not None]
            if not children:
                return state
            ups = torch.stack([c.up for c in children]).permute(1, 2, 0, 3)
            folded = fusion(query, ups, ups, state.residual)
        output, probs = folded
        self.engine.record_fusion_attention(block.name, self.layer_idx, self.location_key, probs)
        return state._replace(hidden=output, last=last)

    def _split(self, block: Split, state: BnState, lvl: int) -> BnState:
        if sum(block.splits) != state.hidden.shape[1]:
            raise InvalidComposition(f"sequence length {state.hidden.shape[1]} does not match splits {block.splits}")
        state = self.before_block(block, state)
        outputs, start = [], 0
        for size, child in zip(block.splits, block):
            part = _map_state(state, lambda t: t[:, start:start + size])
            result = self.compose_child(child, part, lvl)
            if result is not None:
                outputs.append(result)
            start += size
        hidden = torch.cat([o.hidden for o in outputs], dim=1)
        return state._replace(hidden=hidden, last=outputs[-1].last)


def _batchable(modules: list) -> bool:
    """True when bottleneck ``modules`` share one config whose adapter is only Linear, activation, Linear and a
    constant scaling (no LN before/after, gate, PHM): the batched path of ``_compose_rows`` is exact for them."""
    first = modules[0]
    config = first.config
    if (config.ln_before or config.ln_after or config.use_gating or config.phm_layer or first.training
            or not isinstance(first.scaling, float) or len(first.adapter_down) != 2
            or not isinstance(first.adapter_down[0], nn.Linear) or not isinstance(first.adapter_up, nn.Linear)):
        return False
    shape = first.adapter_down[0].weight.shape
    return all(m.config == config and m.adapter_down[0].weight.shape == shape for m in modules[1:])


class _RowOverrides(NamedTuple):
    """Mixed batch: (row group, LN output of those rows) pairs for the host's LayerNorm hook."""

    parts: list


def _map_state(state: BnState, fn) -> BnState:
    return BnState(
        fn(state.hidden),
        fn(state.input_tensor) if state.input_tensor is not None else None,
        fn(state.residual) if state.residual is not None else None,
        state.layer_norm,
        fn(state.up) if state.up is not None else None,
        state.last,
    )


def _concat(states: list, dim: int) -> BnState:
    def cat(values):
        return None if values[0] is None else torch.cat(values, dim=dim)

    return BnState(
        cat([s.hidden for s in states]), cat([s.input_tensor for s in states]), cat([s.residual for s in states]),
        states[0].layer_norm, cat([s.up for s in states]), last_name(states),
    )
