"""Prefix tuning: a model-level pool of prefixes; each layer's keys/values get its prefix prepended.

The prefix reaches HF attention through its own cache interface (``past_key_values.update``), so the
attention implementation stays untouched; the attention mask is extended to cover the prefix. Attention
modules without a cache interface (DistilBERT) get it through their key/value projections (``projections``).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from ...architectures import get_path, supporting
from ...composition import AdapterCompositionBlock, Stack
from ...context import ForwardContext
from ...errors import InvalidAdapterConfig, InvalidComposition
from ...hooks import note_ran, pick_parameter
from .disentangled import DisentangledRoute
from .modules import PrefixFlat, PrefixMLP
from .projections import ProjectionRoute

# The cache argument of HF attention modules: ``cache`` from transformers 5.24 (``past_key_values`` stays
# only as a deprecation shim that drops it when both arrive), ``past_key_values`` / ``past_key_value`` before.
CACHE_ARGUMENTS = ("cache", "past_key_values", "past_key_value")
MASK_ARGUMENTS = ("attention_mask", "mask")
_UNGATED = object()  # layer_prefix without the attention input: whether there is a prefix, not its gated values


class _PrefixCache:
    """Duck-typed HF cache whose ``update`` prepends the prefix keys/values (and proves it was used).

    The cache the model passed (``inner``: filled during generation) is updated first, so the prefix goes in
    front of the past and current keys/values and is never stored in it (the library's order).
    """

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, audit_key=None, inner=None):
        self.keys, self.values, self.audit_key = keys, values, audit_key
        self.inner = getattr(inner, "self_attention_cache", inner)  # EncoderDecoderCache: its self-attention part

    def get_seq_length(self, layer_idx=0):
        """The model cache's length without the prefix (T5 on transformers 5 offsets its position bias by it)."""
        inner = self.inner
        return inner.get_seq_length(layer_idx) if hasattr(inner, "get_seq_length") else 0

    def update(self, key_states, value_states, layer_idx=None, *args, **kwargs):
        note_ran(self.audit_key)
        if self.inner is not None:
            key_states, value_states = self.inner.update(key_states, value_states, layer_idx, *args, **kwargs)
        keys, values = self.keys, self.values
        if keys.shape[0] != key_states.shape[0]:
            factor = key_states.shape[0] // keys.shape[0]
            keys, values = keys.repeat(factor, 1, 1, 1), values.repeat(factor, 1, 1, 1)
        keys, values = keys.to(key_states.dtype), values.to(value_states.dtype)
        return torch.cat([keys, key_states], dim=2), torch.cat([values, value_states], dim=2)


class _CrossPrefixCache(_PrefixCache):
    """``_PrefixCache`` of a cross-attention: the model's cache keeps the encoder's keys/values once (its
    ``cross_attention_cache``, filled at the first step and then re-read, as the attention itself would)."""

    def __init__(self, keys, values, audit_key=None, inner=None):
        super().__init__(keys, values, audit_key, None)
        self.outer = inner if hasattr(inner, "cross_attention_cache") else None

    def update(self, key_states, value_states, layer_idx=None, *args, **kwargs):
        outer = self.outer
        if outer is not None:
            if outer.is_updated.get(layer_idx):
                stored = outer.cross_attention_cache.layers[layer_idx]
                key_states, value_states = stored.keys, stored.values
            else:
                key_states, value_states = outer.cross_attention_cache.update(key_states, value_states, layer_idx,
                                                                              *args, **kwargs)
                outer.is_updated[layer_idx] = True
        return super().update(key_states, value_states, layer_idx)


class PrefixTuning:
    """Engine extension holding ``<base>.prefix_tuning.prefix_tunings.<name>.<location>``.

    The location key and the route into attention come from the architecture's row: ``prefix_location``
    and ``prefix_route`` (``cache`` or ``projections``; None: prefix tuning is refused).
    """

    def __init__(self, engine):
        spec = engine.spec
        if spec.prefix_route is None:
            raise InvalidAdapterConfig(f"prefix tuning is not supported for {spec.model_type} yet; "
                                       f"supported: {', '.join(supporting('prefix_route'))}", field="architecture")
        self.engine = engine
        pool = nn.Module()
        pool.add_module("prefix_tunings", nn.ModuleDict())
        engine.base_model.add_module("prefix_tuning", pool)
        self.prefixes: nn.ModuleDict = pool.prefix_tunings
        self.layer_ids: dict = {}  # name -> {layer index: position in the prefix module}
        config = engine.model_config
        # T5: the attention's head width ``d_kv`` (the library's), which need not be hidden size / heads
        self.head_dim = getattr(config, "d_kv", None) or engine.hidden_size // config.num_attention_heads
        # grouped-query attention: the prefix has the key/value heads (the row's prefix_heads_attr)
        self.n_heads = getattr(config, spec.prefix_heads_attr) if spec.prefix_heads_attr else config.num_attention_heads
        self.location = spec.prefix_location
        self.paths: dict = {}  # layer index -> path of its attention module (error messages)
        # encoder-decoder models: (layer index, location key) -> path, one per attention module with a prefix
        self.slot_paths: dict = {}
        route = {"projections": ProjectionRoute, "disentangled": DisentangledRoute}.get(spec.prefix_route)
        if spec.encoder_decoder:
            self._hook_encoder_decoder(engine, spec, route)
            return
        for idx, layer in enumerate(get_path(engine.base_model, spec.layers, spec.model_type)):
            self.paths[idx] = f"{spec.layers}.{idx}.{spec.self_attention}"
            if route is not None:
                route(self, idx, layer, spec)
            else:
                attention = get_path(layer, spec.self_attention, spec.model_type)
                attention.register_forward_pre_hook(self._make_hook(idx, attention), with_kwargs=True)

    def _hook_encoder_decoder(self, engine, spec, route) -> None:
        """Encoder self-attention (``encoder_prefix_location``), decoder self-attention (``prefix_location``) and
        cross-attention (``cross_prefix_location``): each its own prefix module in the pool, as in the library."""
        if route is not None:
            raise InvalidAdapterConfig(f"{spec.model_type}: encoder-decoder prefix tuning needs the cache route",
                                       field="architecture")
        for idx, layer in enumerate(engine.layers()):
            decoder = engine.is_decoder_layer(idx)
            slots = [(spec.self_attention, spec.prefix_location if decoder else spec.encoder_prefix_location, decoder)]
            if decoder and spec.cross_attention is not None:
                slots.append((spec.cross_attention, spec.cross_prefix_location, False))
            for relative, location, causal in slots:
                if location is None:
                    continue
                self.slot_paths[(idx, location)] = f"{engine.layer_path(idx)}.{relative}"
                attention = get_path(layer, relative, spec.model_type)
                attention.register_forward_pre_hook(
                    self._make_hook(idx, attention, location, causal, cross=relative == spec.cross_attention),
                    with_kwargs=True)

    def _layers_by_location(self, config) -> dict:
        """Location key -> the layers (library numbering) that get a prefix of ``config``, in order."""
        spec, engine = self.engine.spec, self.engine
        kept = [i for i in range(engine.num_layers) if i not in config.leave_out]
        if not spec.encoder_decoder:
            return {self.location: kept}
        encoder = [i for i in kept if not engine.is_decoder_layer(i)]
        decoder = [i for i in kept if engine.is_decoder_layer(i)]
        found = {}
        if spec.encoder_prefix_location and config.encoder_prefix and encoder:
            found[spec.encoder_prefix_location] = encoder
        if decoder:
            found[spec.prefix_location] = decoder
        if spec.cross_prefix_location and config.cross_prefix and decoder:
            found[spec.cross_prefix_location] = decoder
        return found

    # --- adapters ---
    def add(self, name: str, config) -> None:
        cls = PrefixFlat if config.flat else PrefixMLP
        ref = self.engine._reference_param()
        modules, ids = {}, {}
        for location, layers in self._layers_by_location(config).items():
            module = cls(len(layers), self.n_heads, self.head_dim, self.engine.hidden_size, config)
            modules[location] = module.to(device=ref.device, dtype=ref.dtype)
            ids[location] = {layer: pos for pos, layer in enumerate(layers)}
        self.prefixes[name] = nn.ModuleDict(modules)
        self.layer_ids[name] = ids  # location -> {layer index: position in that location's module}
        if config.use_gating:  # one gate per attention module with a prefix, on that module (the library's keys):
            # encoder-decoders gate each location (encoder, decoder and cross-attention) on its own
            for location, layers in ids.items():
                for layer in layers:
                    gate = prefix_gate(self.engine.hidden_size, config.shared_gating)
                    self._gates(layer, location=location)[name] = gate.to(device=ref.device, dtype=ref.dtype)

    def _gates(self, layer_idx: int, create: bool = True, location=None):
        """The ``prefix_tuning.prefix_gates`` dict on the attention module that takes layer ``layer_idx``'s prefix
        of ``location`` (the self-attention; an encoder-decoder's cross-attention for its cross location)."""
        spec = self.engine.spec
        relative = spec.self_attention
        if spec.encoder_decoder and location is not None and location == spec.cross_prefix_location:
            relative = spec.cross_attention
        attention = get_path(self.engine.layers()[layer_idx], relative, spec.model_type)
        holder = getattr(attention, "prefix_tuning", None)
        if holder is None:
            if not create:
                return {}
            holder = nn.Module()
            holder.add_module("prefix_gates", nn.ModuleDict())
            attention.add_module("prefix_tuning", holder)
        return holder.prefix_gates

    def delete(self, name: str) -> None:
        if name in self.prefixes:
            del self.prefixes[name]
            del self.layer_ids[name]
        for gates in self._all_gates():
            if name in gates:
                del gates[name]

    def modules_of(self, name: str) -> list:
        if name not in self.prefixes:
            return []
        return [self.prefixes[name]] + [gates[name] for gates in self._all_gates() if name in gates]

    def _all_gates(self) -> list:
        if self.engine.spec.encoder_decoder:
            return [self._gates(idx, create=False, location=location) for idx, location in self.slot_paths]
        return [self._gates(idx, create=False) for idx in range(self.engine.num_layers)]

    def before_save(self, name: str) -> None:
        return None

    def expected_sites(self) -> dict:
        """Every layer that gets a prefix in this forward must show its attention module took it."""
        found = {("prefix", idx): path for idx, path in self.paths.items() if self.layer_prefix(idx) is not None}
        found.update({("prefix", idx, location): path for (idx, location), path in self.slot_paths.items()
                      if self.layer_prefix(idx, location) is not None})
        return found

    # --- forward ---
    def _active(self) -> list:
        setup, skip = self.engine.current_setup()
        if setup is None:
            return [], skip
        names = [n for n in setup.flatten() if n in self.prefixes]
        if not names:
            return [], skip
        if not _is_plain_stack(setup):
            raise InvalidComposition("prefix tuning adapters can only be used alone or in a Stack")
        return [n for n in _stack_order(setup) if n in self.prefixes], skip

    def before_forward(self, args, kwargs, forward):
        names, _ = self._active()
        if not names:
            return None
        batch = _batch_size(args, kwargs)
        for name in names:
            forward.prefix_states[name] = {location: module(batch) for location, module in self.prefixes[name].items()}
        return None

    def layer_prefix(self, layer_idx: int, location=None, hidden=_UNGATED):
        """(keys, values) of the active prefixes for this layer (and location key: encoder-decoder models), each
        (batch, heads, length, head_dim); or None. ``hidden``: the attention's input, from which a gated prefix
        computes the gates that scale its keys and values (left out: ungated, for the audit's existence checks)."""
        location = location or self.location
        forward = ForwardContext.current()
        if forward is None:
            return None
        names, skip = self._active()
        if not names or (skip and layer_idx in skip):
            return None
        keys = values = None
        for name in names:
            position = self.layer_ids[name].get(location, {}).get(layer_idx)
            if position is None or name not in forward.prefix_states:
                continue
            k, v = forward.prefix_states[name][location][position]
            if hidden is not _UNGATED:
                gates = self._gates(layer_idx, create=False, location=location)
                if name in gates:
                    k, v = self._gated(name, layer_idx, location, gates[name], hidden, k, v)
            keys = k if keys is None else torch.cat([k, keys], dim=2)
            values = v if values is None else torch.cat([v, values], dim=2)
        return None if keys is None else (keys, values)

    def _gated(self, name: str, layer_idx: int, location: str, gate: nn.Module, hidden, keys, values):
        """Keys times the first gate, values times the last (one shared gate, or two); a gate is the sigmoid of
        a Linear of the attention input, averaged over the sequence (padding included, as in the library). A
        cross-attention's input is the decoder side (the queries), as in the library."""
        if not isinstance(hidden, torch.Tensor):
            path = self.paths.get(layer_idx) or self.slot_paths.get((layer_idx, location))
            raise InvalidAdapterConfig(f"gated prefix {name!r}: the input of {path} was not seen", field="use_gating")
        scores = torch.sigmoid(gate(hidden)).mean(dim=1)  # (batch, 1 or 2)
        self.engine.record_gate(name, layer_idx, location, scores)
        scores = scores.to(keys.dtype)
        return keys * scores[:, 0].view(-1, 1, 1, 1), values * scores[:, -1].view(-1, 1, 1, 1)

    def _make_hook(self, layer_idx: int, attention: nn.Module, location=None, causal=None, cross: bool = False):
        """``location``: the prefix's location key (encoder-decoder models; else the row's); ``causal``: this
        attention is causal (default: the row's ``causal``); ``cross``: a cross-attention (its cache part)."""
        arch = self.engine.spec.model_type
        path = self.paths[layer_idx] if location is None else self.slot_paths[(layer_idx, location)]
        audit_key = ("prefix", layer_idx) if location is None else ("prefix", layer_idx, location)
        causal = self.engine.spec.causal if causal is None else causal
        params = list(inspect.signature(attention.forward).parameters)
        mask_name = pick_parameter(attention, MASK_ARGUMENTS, arch, path, "the attention mask")
        mask_index = params.index(mask_name)
        cache_name = pick_parameter(attention, CACHE_ARGUMENTS, arch, path, "the key/value cache")
        cache_index = params.index(cache_name)
        stale_names = [name for name in CACHE_ARGUMENTS if name != cache_name]

        def hook(module, args, kwargs):
            prefix = self.layer_prefix(layer_idx, location, args[0] if args else kwargs.get(params[0]))
            if prefix is None:
                return None
            keys, values = prefix
            args, kwargs = list(args), dict(kwargs)
            inner = kwargs.get(cache_name) if cache_name in kwargs or cache_index >= len(args) else args[cache_index]
            for name in stale_names:  # a deprecation shim would drop ours when both arrive
                stale = kwargs.pop(name, None)
                inner = stale if inner is None else inner
            cache = (_CrossPrefixCache if cross else _PrefixCache)(keys, values, audit_key, inner)
            in_kwargs = mask_name in kwargs or mask_index is None or mask_index >= len(args)
            mask = kwargs.get(mask_name) if in_kwargs else args[mask_index]
            if mask is None and causal:
                hidden = args[0] if args else kwargs["hidden_states"]
                own = getattr(module, "layer_idx", None)  # the cache's index (decoder-local in encoder-decoders)
                cache_idx = layer_idx if own is None else own
                past = cache.inner.get_seq_length(cache_idx) if hasattr(cache.inner, "get_seq_length") else 0
                mask = _causal_mask(hidden.shape[1], keys.shape[2], hidden.dtype, hidden.device, past)
            else:
                mask = _extend_mask(mask, keys.shape[2])
            if in_kwargs:
                kwargs[mask_name] = mask
            else:
                args[mask_index] = mask
            if cache_index < len(args) and cache_name not in kwargs:
                args[cache_index] = cache
            else:
                kwargs[cache_name] = cache
            return tuple(args), kwargs

        return hook


def prefix_gate(hidden_size: int, shared: bool) -> nn.Linear:
    """A gated prefix's gate in one layer: one output (keys and values share it) or two; N(0, 0.02) weights."""
    gate = nn.Linear(hidden_size, 1 if shared else 2)
    nn.init.normal_(gate.weight, mean=0.0, std=0.02)
    return gate


def _extend_mask(mask, length: int):
    """Prepend ``length`` always-visible positions to an attention mask (2D keep-mask or 4D)."""
    if mask is None:
        return None
    if not isinstance(mask, torch.Tensor):  # e.g. flex attention's BlockMask
        raise InvalidAdapterConfig(f"prefix tuning cannot extend an attention mask of type {type(mask).__name__} "
                                   f"(use the eager or sdpa attention implementation)", field="attn_implementation")
    shape = list(mask.shape)
    shape[-1] = length
    if mask.dtype == torch.bool:
        fill = True
    elif mask.dim() == 2:
        fill = 1
    else:
        fill = 0  # additive 4D mask: 0 = attend
    prefix = torch.full(shape, fill, dtype=mask.dtype, device=mask.device)
    if prefix.shape[0] != mask.shape[0]:
        prefix = prefix[: mask.shape[0]]
    return torch.cat([prefix, mask], dim=-1)


def _causal_mask(length: int, prefix: int, dtype, device, past: int = 0) -> torch.Tensor:
    """Additive (1, 1, length, prefix + past + length) mask: every prefix position, then causal over the cached
    (``past``) and current positions."""
    query = torch.arange(length, device=device)[:, None] + past
    key = torch.arange(prefix + past + length, device=device)[None, :] - prefix
    blocked = key > query
    mask = torch.zeros(length, prefix + past + length, dtype=dtype, device=device)
    return mask.masked_fill(blocked, torch.finfo(dtype).min)[None, None]


def _batch_size(args, kwargs) -> int:
    for value in list(args) + [kwargs.get(k) for k in ("input_ids", "inputs_embeds", "attention_mask",
                                                       "decoder_input_ids", "decoder_inputs_embeds")]:
        if isinstance(value, torch.Tensor):
            return value.shape[0]
    raise InvalidComposition("cannot infer the batch size for prefix tuning")


def _is_plain_stack(setup) -> bool:
    if isinstance(setup, str):
        return True
    return isinstance(setup, Stack) and all(_is_plain_stack(c) for c in setup)


def _stack_order(setup) -> list:
    if isinstance(setup, str):
        return [setup]
    names = []
    for child in setup:
        names += _stack_order(child) if isinstance(child, AdapterCompositionBlock) else [child]
    return names
