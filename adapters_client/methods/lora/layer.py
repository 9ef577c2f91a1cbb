"""LoRA / (IA)^3 on one Linear (or Conv1D): a ``loras`` dict on the module and a forward hook."""

from __future__ import annotations

from typing import NamedTuple, Optional

import torch
from torch import nn

from ...composition import MultiTask
from ...context import ForwardContext, RowAdapters, put_rows, take_rows
from ...errors import InvalidAdapterConfig, InvalidComposition
from ...hooks import note_ran, target_missing
from ..composable import ComposableLayer, last_name
from .modules import LoRA, drop_unused_shared, gate_of, make_lora, shared_vera
from .mtl import MTLLoRA, check_mtl_arch, compose_multi_task, forget_adapter, share_at, unshare_at


class LoRAState(NamedTuple):
    layer_input: torch.Tensor
    hidden: Optional[torch.Tensor]
    layer_output: torch.Tensor
    last: Optional[str]


def _features(module: nn.Module) -> tuple[int, int, bool]:
    """(in, out, transposed): Conv1D (GPT-2) stores its weight as (in, out)."""
    if isinstance(module, nn.Linear):
        return module.in_features, module.out_features, False
    weight = module.weight
    return weight.shape[0], weight.shape[1], True


class LoRALayer(ComposableLayer):
    """The LoRA modules of one projection (location: selfattn/intermediate/output; attn_key: q/k/v)."""

    def __init__(self, engine, module: nn.Module, layer_idx: int, location: str, attn_key: Optional[str] = None,
                 path: str = ""):
        self.engine = engine
        self.module = module
        self.layer_idx = layer_idx
        self.path = path  # from the base model, for error messages
        if getattr(module, "weight", None) is None or module.weight.dim() != 2:
            raise target_missing(engine.spec.model_type, path, f"expected a Linear or Conv1D projection, found "
                                                             f"{type(module).__name__}")
        self.location_key = f"{location}_lora"
        self.attn_key = attn_key
        self.in_features, self.out_features, self.transposed = _features(module)
        module.add_module("loras", nn.ModuleDict())
        self.adapters: nn.ModuleDict = module.loras
        self.merged: Optional[str] = None
        # first among the module's forward hooks: a bottleneck site hooked on the same module (BART's fc2) must
        # see the output with LoRA applied, as the library's wrapped Linear gives it
        module.register_forward_hook(self._hook, prepend=True)

    def wants(self, config) -> bool:
        if not config.get(self.location_key, False) or self.layer_idx in config.leave_out:
            return False
        return self.attn_key is None or self.attn_key in config.attn_matrices

    def add(self, name: str, config) -> bool:
        if not self.wants(config):
            return False
        lora = self._build(name, config)
        lora.to(self.module.weight.device)
        self.adapters[name] = lora
        return True

    def _build(self, name: str, config):
        """The module of adapter ``name`` here: DoRA gets this layer's weight, VeRA its adapter's shared A/B."""
        if config.use_dora and self.transposed:
            raise InvalidAdapterConfig(f"DoRA on {self.path} (a Conv1D, as in GPT-2) is not supported: the adapters "
                                       "library fails on it too", field="use_dora")
        if getattr(config, "architecture", "lora") == "mtl_lora":
            check_mtl_arch(self.engine)
        shared = None
        if config.is_vera:
            shared = shared_vera(self.engine.base_model, name, (config.r, self.in_features),
                                 (self.out_features, config.r), config, self.module.weight)
        try:
            lora = make_lora(self.in_features, self.out_features, config, weight=self.module.weight, shared=shared)
        except Exception:
            drop_unused_shared(self.engine.base_model, name)
            raise
        if hasattr(lora, "bind"):
            lora.bind(self.module)
        return lora

    def remove(self, name: str) -> None:
        if self.merged == name:
            self.reset()
        forget_adapter(self, name)  # MTL-LoRA: its shares here
        lora = self.adapters[name]
        del self.adapters[name]
        if hasattr(lora, "release") and lora.release() == 0:
            drop_unused_shared(self.engine.base_model, name)

    # --- MTL-LoRA: shared A/B (share_parameters) ---
    def share(self, name: str, adapter_names: list, reference: str) -> bool:
        return share_at(self, name, adapter_names, reference)

    def unshare(self, name: str) -> None:
        unshare_at(self, name)

    # --- merging ---
    def _delta(self, lora) -> torch.Tensor:
        delta = lora.delta_w
        return delta.t() if self.transposed else delta

    def merge(self, name: str) -> None:
        if name not in self.adapters or self.merged == name:
            return
        refuse_gated_merge(self.adapters[name], name)
        if self.merged:
            raise InvalidComposition(f"LoRA {self.merged!r} is already merged; call reset_adapter() first")
        lora = self.adapters[name]
        with torch.no_grad():
            self.module.weight.data = lora.merge_into(self.module.weight.data, self._delta(lora))
            bias = getattr(self.module, "bias", None)
            if lora.composition_mode == "scale" and bias is not None:
                bias.data = bias.data * (lora.lora_B.view(-1) * lora.scaling)
            elif bias is not None:
                bias.data = lora.merge_bias(bias.data)  # DoRA rescales the bias too
        self.merged = name

    def reset(self) -> None:
        if not self.merged:
            return
        lora = self.adapters[self.merged]
        with torch.no_grad():
            self.module.weight.data = lora.unmerge_from(self.module.weight.data, self._delta(lora))
            bias = getattr(self.module, "bias", None)
            if lora.composition_mode == "scale" and bias is not None:
                bias.data = bias.data / (lora.lora_B.view(-1) * lora.scaling)
            elif bias is not None:
                bias.data = lora.unmerge_bias(bias.data)
        self.merged = None

    # --- forward ---
    def _hook(self, module, args, output):
        rows = RowAdapters.current()
        if rows is not None:
            return self._on_output_rows(module, args, output, rows)
        return self._on_output(module, args, output)

    def _on_output_rows(self, module, args, output, rows):
        """A mixed batch (``adapter_names``): each group of rows whose adapter this projection holds runs the
        single-adapter path (``_on_output``, also a subclass's) on its own rows; other rows keep the output."""
        groups = rows.adapter_groups(output.device, self.adapters)
        if groups and (output.dim() < 2 or output.shape[0] != len(rows.names)):
            raise InvalidComposition(
                f"{self.engine.spec.model_type}: {self.path} also projects a tensor without the batch's rows "
                f"(shape {tuple(output.shape)}, e.g. relative position embeddings shared by every row); its "
                f"LoRA/(IA)^3 adapters cannot differ per row in a mixed-adapter batch")
        if len(groups) > 1 and type(self) is LoRALayer and args[0].dim() == 3 and \
                _batchable([self.adapters[g.name] for g in groups]):
            return self._lora_rows(rows, args[0], output)
        result = None
        for group in groups:
            part_args = (take_rows(args[0], group),) + tuple(args[1:])
            out = rows.run_group(group.name, self._on_output, module, part_args, take_rows(output, group))
            if out is None:
                continue
            if result is None:
                result = output.clone()
            put_rows(result, group, out)
        return result

    def _lora_rows(self, rows, layer_input, output):
        """Plain LoRA groups of one rank (``_batchable``): one batched pass, each row with its own A, B, scaling."""
        note_ran(id(self))
        selected, names = rows.selection(output.device, self.adapters)
        modules = [self.adapters[name] for name in names]
        x, out = take_rows(layer_input, selected), take_rows(output, selected)
        down = torch.bmm(x, torch.stack([m.lora_A for m in modules]).transpose(1, 2))
        delta = torch.bmm(down, torch.stack([m.lora_B for m in modules]).transpose(1, 2))
        scalings = [m.scaling for m in modules]
        if len(set(scalings)) == 1:
            delta = delta * scalings[0]
        else:
            delta = delta * torch.tensor(scalings, dtype=delta.dtype, device=delta.device).view(-1, 1, 1)
        changed = out + delta
        if selected.span == (0, output.shape[0]):
            return changed
        result = output.clone()
        put_rows(result, selected, changed)
        return result

    def _on_output(self, module, args, output):
        setup = self.engine.setup_for(self)
        if setup is None:
            return None
        note_ran(id(self))
        if self.merged:
            return None
        layer_input = args[0]
        if layer_input.shape[0] != output.shape[0]:
            layer_input = layer_input.repeat(output.shape[0] // layer_input.shape[0], *([1] * (layer_input.dim() - 1)))
        state = self.compose(setup, LoRAState(layer_input, None, output, None), 0)
        if state.last is None:
            return None
        return self.adapters[state.last].combine(state.layer_output, state.hidden)

    # --- composition (the blocks are dispatched by ComposableLayer) ---
    def extra_handlers(self) -> dict:
        return {MultiTask: self.compose_multi_task}

    def compose_multi_task(self, block: MultiTask, state: LoRAState, lvl: int) -> LoRAState:
        return compose_multi_task(self, block, state, lvl)

    def map_state(self, state: LoRAState, fn) -> LoRAState:
        return _map(state, fn)

    def batch_size(self, state: LoRAState) -> int:
        return state.layer_input.shape[0]

    def compose_other(self, block, state: LoRAState, lvl: int) -> LoRAState:
        if set(self.adapters.keys()).isdisjoint(block.flatten()):
            return state
        raise InvalidComposition(f"{type(block).__name__} is not supported by LoRA")

    def compose_single(self, name: str, state: LoRAState) -> LoRAState:
        lora = self.adapters[name]
        if getattr(lora, "use_gating", False):
            record_gate(self, name, lora, state.layer_input)
        return state._replace(hidden=lora(state.hidden, state.layer_input), last=name)

    def join_parallel(self, state: LoRAState, parts: list) -> LoRAState:
        return _concat(parts, self.adapters)

    join_batch_split = join_parallel

    def join_average(self, block, state: LoRAState, parts: list) -> LoRAState:
        parts = [p if p is not None else state for p in parts]
        parts = [p for p in parts if p.hidden is not None]
        if not parts:
            return state
        hidden = self.weighted_mean(block, [p.hidden for p in parts], like=state.layer_output)
        return state._replace(hidden=hidden, last=parts[-1].last)


def refuse_gated_merge(lora, name: str) -> None:
    """A gated LoRA's update depends on the input: it cannot be folded into the weight (the library refuses too).
    Nor can MTL-LoRA's mix of up-projections (the library's merge writes a weight of the wrong shape)."""
    if isinstance(lora, MTLLoRA):
        raise InvalidAdapterConfig(f"LoRA {name!r} is an MTL-LoRA adapter: merging it into the weight is not "
                                   "supported (the adapters library's merge breaks the layer)", field="architecture")
    if getattr(lora, "use_gating", False):
        raise InvalidAdapterConfig(f"LoRA {name!r} is gated (use_gating=True): its update depends on the input "
                                   f"and cannot be merged into the weight", field="use_gating")


def record_gate(layer, name: str, lora, layer_input) -> None:
    """``output_adapter_gating_scores``: the gate of ``lora`` on this input (computed only when asked for)."""
    forward = ForwardContext.current()
    if forward is not None and forward.extras.get("output_gating"):
        layer.engine.record_gate(name, layer.layer_idx, layer.location_key, gate_of(lora, layer_input))


def _batchable(modules: list) -> bool:
    """True when every module is a plain LoRA (no DoRA, eval mode, no dropout to apply) of one shape: the
    batched path of ``_lora_rows`` computes exactly what each one's forward and ``combine`` do."""
    shape = None
    for module in modules:
        if (type(module) is not LoRA or module.use_dora or module.use_gating or module.training
                or module.lora_A.shape[0] != module.r):
            return False
        if shape is None:
            shape = (module.lora_A.shape, module.lora_B.shape)
        elif (module.lora_A.shape, module.lora_B.shape) != shape:
            return False
    return True


def _map(state: LoRAState, fn) -> LoRAState:
    hidden = fn(state.hidden) if state.hidden is not None else None
    return LoRAState(fn(state.layer_input), hidden, fn(state.layer_output), state.last)


def _concat(states: list, adapters) -> LoRAState:
    last = last_name(states)
    if last is None:
        return LoRAState(torch.cat([s.layer_input for s in states]), None,
                         torch.cat([s.layer_output for s in states]), None)
    # branches without a LoRA keep their output: neutral element of the composition
    neutral = 0.0 if adapters[last].composition_mode == "add" else 1.0
    # (IA)^3 branches hold a broadcastable (1, 1, out) scale: expand each to its branch's rows.
    hidden = [s.hidden.expand_as(s.layer_output) if s.hidden is not None
              else torch.full_like(s.layer_output, neutral) for s in states]
    return LoRAState(torch.cat([s.layer_input for s in states]), torch.cat(hidden),
                     torch.cat([s.layer_output for s in states]), last)
