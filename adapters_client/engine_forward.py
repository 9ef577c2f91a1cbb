"""The forward-time half of the adapter engine: the base model's pre/post hooks, the first-forward audit,
Parallel replication (at the input, at a layer, or mid-layer at a bottleneck site), the per-layer pre-hook,
and the recorders behind ``output_adapter_gating_scores`` and ``output_adapter_fusion_attentions``.

``AdapterEngine`` (engine.py) inherits these; they read its registry (``all_sites``, ``extensions``,
``current_setup``, ``setup_for``) and never change which adapters exist.
"""

from __future__ import annotations

import contextvars
from typing import Optional

import torch

from .composition import AdapterCompositionBlock, Parallel, Stack
from .context import ForwardContext, Replication, repeat_batched
from .errors import IncompatibleAdapter
from .hooks import auditing, finish_audit, start_audit

# the ForwardContext a base-model pre-hook opened itself (no AdapterModel.forward around it)
_OWNED: contextvars.ContextVar = contextvars.ContextVar("adapters_client_owned_context", default=None)
_BATCHED_INPUTS = ("input_ids", "attention_mask", "token_type_ids", "position_ids", "inputs_embeds",
                   "decoder_input_ids", "decoder_attention_mask", "decoder_inputs_embeds")  # the last: seq2seq
_RECORDING = ("output_hidden_states", "output_attentions")  # per-layer outputs would mix batch sizes



class ForwardMachinery:
    """Forward hooks and per-forward bookkeeping of an ``AdapterEngine`` (mixed in; holds no state of its own)."""

    def _refuse_unpadded(self) -> None:
        """IncompatibleAdapter when transformers runs this model unpadded (``spec.unpadded_attention``)."""
        import transformers

        attn = getattr(self.model_config, "_attn_implementation", None)
        if attn in self.spec.unpadded_attention and int(transformers.__version__.split(".")[0]) < 5:
            raise IncompatibleAdapter(
                f"{self.spec.model_type} with attn_implementation={attn!r} runs on unpadded tensors in transformers "
                f"{transformers.__version__}, which adapters do not support; use 'sdpa' or 'eager'",
                field="attn_implementation")

    def _before_base_forward(self, module, args, kwargs):
        stale = _OWNED.get()
        if stale is not None:  # a previous forward raised before its end hook ran
            _OWNED.set(None)
            if ForwardContext.current() is stale.state:
                stale.__exit__(None, None, None)
        forward = ForwardContext.current()
        if forward is None:
            context = ForwardContext()
            context.__enter__()
            _OWNED.set(context)
            forward = context.state
        changed = False
        if self.spec.encoder_decoder:
            forward.extras["encoder_skipped"] = kwargs.get("encoder_outputs") is not None
        setup, _ = self.current_setup()
        if setup is not None and self.spec.unpadded_attention:
            self._refuse_unpadded()
        channels = setup.parallel_channels if isinstance(setup, (Parallel, Stack)) else 1
        if channels > 1 and forward.original_batch_size is None and forward.pending_replication is None:
            batch = _input_batch_size(args, kwargs)
            point = self._replication_point(setup, args, kwargs) if batch is not None else None
            if point is None:
                args, kwargs = _replicate_inputs(args, kwargs, channels, forward)
                changed = True
            else:
                forward.pending_replication = Replication(point[0], point[1], batch, channels)
        for ext in self.extensions.values():
            result = ext.before_forward(args, kwargs, forward)
            if result is not None:
                args, kwargs = result
                changed = True
        if setup is not None and self._audit_key() not in self._audited:
            start_audit(forward)
        return (args, kwargs) if changed else None

    # --- the first forward of each setup proves every site ran (hooks.py) ---
    def _audit_key(self) -> tuple:
        setup, skip = self.current_setup()
        kwargs = setup._kwargs() if isinstance(setup, AdapterCompositionBlock) else {}
        return self._generation, repr(setup), repr(kwargs), tuple(skip) if skip else None

    def expected_sites(self) -> dict:
        """Site key -> module path of every injected site the current setup concerns."""
        expected = {id(site): site.path for site in self.all_sites() if self.setup_for(site) is not None}
        for ext in self.extensions.values():
            expected.update(ext.expected_sites())
        forward = ForwardContext.current()
        if forward is not None and forward.extras.get("encoder_skipped"):  # encoder_outputs given: no encoder run
            encoder = f"{self.spec.layers}."
            expected = {key: path for key, path in expected.items() if not path.startswith(encoder)}
        return expected

    def _finish_audit(self) -> None:
        forward = ForwardContext.current()
        if not auditing(forward):
            return
        finish_audit(forward, self.expected_sites(), self.spec.model_type)
        if len(self._audited) > 256:  # setups from AdapterSetup contexts come and go
            self._audited.clear()
        self._audited.add(self._audit_key())

    def _replication_point(self, setup, args, kwargs) -> Optional[tuple]:
        """(layer, site) where Parallel replicates the batch: the first the setup concerns; None: at the input.

        Replicating inside the model is safe when nothing before that point depends on the branch (no
        prefix/prompt tuning in the setup), no cache is filled (its layers would hold different batch
        sizes) and no per-layer outputs are recorded (hidden states, attentions). Skipped lower layers
        then run once, as in the adapters library.
        """
        if not self._replicate_at_layers or len(args) > 1 or self.spec.encoder_decoder:
            return None  # encoder-decoder: encoder and decoder inputs are replicated together, at the input
        if self.base_model.training and any(
                getattr(m, "gradient_checkpointing", False) is True for m in self.base_model.modules()):
            return None  # checkpointed layers recompute outside this forward's state
        config = self.model_config
        if any(_flag(kwargs, config, k) for k in _RECORDING):
            return None
        if kwargs.get("past_key_values") is not None or kwargs.get("past_key_value") is not None:
            return None
        if _flag(kwargs, config, "use_cache") and (self.spec.causal or getattr(config, "is_decoder", False)):
            return None
        flat = setup.flatten()
        if any(ext.modules_of(name) for ext in self.extensions.values() for name in flat):
            return None
        concerned = [m for m in self.all_sites() if self.setup_for(m) is not None]
        if not concerned:
            return None
        layer = min(m.layer_idx for m in concerned)
        # post-LN hosts (BERT family, DistilBERT) let a bottleneck site replicate mid-layer: the layer's
        # sub-layers before it run on the original batch too; elsewhere the layer's input is replicated
        in_layer = [m for m in concerned if m.layer_idx == layer]
        mid_layer = (all(site.layer_norm for site in self.spec.sites) and kwargs.get("encoder_hidden_states") is None
                     and not getattr(self.model_config, "add_cross_attention", False)
                     and all(getattr(m, "replicates_mid_layer", False) for m in in_layer))
        return layer, (in_layer[0].location_key if mid_layer else None)

    def _before_layer(self, layer_idx: int, module, args, kwargs):
        """Layer pre-hook: replicate at the planned layer; later layers get the model's masks replicated."""
        forward = ForwardContext.current()
        plan = forward.pending_replication if forward is not None else None
        if plan is None or layer_idx < plan.layer or (layer_idx == plan.layer and plan.site is not None):
            return None
        if forward.original_batch_size is None:
            forward.original_batch_size = plan.batch
            forward.parallel_channels = plan.channels
        memo = forward.extras.setdefault("replicated", {})
        return (repeat_batched(args, plan.batch, plan.channels, memo),
                repeat_batched(kwargs, plan.batch, plan.channels, memo))

    def replicate_at_site(self, site_layer) -> int:
        """How many times the bottleneck ``site_layer`` replicates the batch now (1: not its job)."""
        forward = ForwardContext.current()
        plan = forward.pending_replication if forward is not None else None
        if (plan is None or forward.original_batch_size is not None or plan.layer != site_layer.layer_idx
                or plan.site != site_layer.location_key):
            return 1
        forward.original_batch_size = plan.batch
        forward.parallel_channels = plan.channels
        return plan.channels

    def _after_base_forward(self, module, args, output):
        context = _OWNED.get()
        try:
            if output is not None:  # None: the forward raised (an always-called hook); its error is what counts
                self._finish_audit()
        finally:
            if context is not None:
                _OWNED.set(None)
                context.__exit__(None, None, None)
        return None

    def record_gate(self, name, layer_idx, location, gate) -> None:
        """``output_adapter_gating_scores``: the library's layout, gates squeezed (one value per row, or per row and
        gate) and the gates of one location (LoRA's q and v) put side by side as columns."""
        forward = ForwardContext.current()
        if forward is not None and forward.extras.get("output_gating"):
            score = gate.detach().squeeze()
            score = score.reshape(1) if score.dim() == 0 else score
            places = forward.gating_scores.setdefault(name, {}).setdefault(layer_idx, {})
            places[location] = torch.column_stack((places[location], score)) if location in places else score

    def record_fusion_attention(self, name, layer_idx, location, probs) -> None:
        forward = ForwardContext.current()
        if forward is not None and forward.extras.get("output_fusion"):
            store = forward.extras.setdefault("fusion_attentions", {})
            store.setdefault(name, {}).setdefault(layer_idx, {})[location] = probs.detach()


def _flag(kwargs, config, name: str) -> bool:
    """A boolean forward option as the HF model resolves it: the argument, else the config's value."""
    value = kwargs.get(name)
    return bool(getattr(config, name, False) if value is None else value)


def _input_batch_size(args, kwargs) -> Optional[int]:
    for value in list(args) + [kwargs.get(k) for k in _BATCHED_INPUTS]:
        if isinstance(value, torch.Tensor):
            return value.shape[0]
    return None


def _replicate_inputs(args, kwargs, channels: int, forward):
    """Repeat every batched input ``channels`` times along the batch dimension (Parallel)."""
    batch = _input_batch_size(args, kwargs)
    if batch is None:
        return args, kwargs

    def rep(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0 and value.shape[0] == batch:
            return value.repeat(channels, *([1] * (value.dim() - 1)))
        return value

    forward.original_batch_size = batch
    forward.parallel_channels = channels
    new_kwargs = {k: (rep(v) if k in _BATCHED_INPUTS else v) for k, v in kwargs.items()}
    return tuple(rep(a) for a in args), new_kwargs
