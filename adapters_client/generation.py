"""``generate()`` on ``AdapterModel``: transformers' own ``GenerationMixin`` with an LM head as the active head.

The adapters library's ``*AdapterModel`` classes are ``PreTrainedModel`` subclasses with ``GenerationMixin``; ours
is a plain ``nn.Module`` around the HF base model, so ``GenerationSupport`` gives ``GenerationMixin`` the few
``PreTrainedModel`` members it reads (``generation_config``, ``can_generate``, ``dtype``, ``get_encoder``, ...)
and leaves decoding (greedy, sampling, beam search, the KV cache, stopping criteria) to transformers.

What differs from a plain HF model:
- the heads used must all be LM heads (``causal_lm`` / ``seq2seq_lm``), else ``InvalidHead`` before anything runs;
- encoder-decoders: transformers runs the encoder on its own before decoding; here it runs through the base
  model's forward (one decoder position), so the engine's hooks see it as in a model forward (prefix tuning on
  the encoder, the first-forward audit);
- Parallel: the inputs are replicated once per branch before decoding (as the library does), so the result holds
  ``channels * batch`` rows, branch by branch; each forward inside ``generate`` knows its batch is replicated
  already (the library's ``adapter_input_parallelized`` keyword does the same in a plain forward);
- gated adapters decode without the cache unless ``use_cache`` is given (their gates average over each forward's
  positions, so a cached step would gate differently from the full sequence);
- ``adapter_names=[...]`` (a mixed-adapter batch, one adapter or None per input row; generation_rows.py): the
  active setup does not apply, each row decodes with its own adapter and LM head (beams and returned sequences
  keep their input row's adapter);
- refused (typed): a BatchSplit setup or head setting.
"""

from __future__ import annotations

import contextvars
from contextlib import contextmanager, nullcontext
from typing import Optional

import torch
from torch import nn
from transformers import GenerationConfig, GenerationMixin
from transformers.modeling_outputs import BaseModelOutput

from .composition import BatchSplit, Parallel, Stack
from .context import ForwardContext
from .errors import InvalidComposition
from .generation_rows import RowGeneration, generation_plan, prepare_row_generation
from .pipelines import GENERATION_HEAD_TYPES as LM_HEAD_TYPES  # the one list (torch-free, read by the hub too)

PARALLELIZED = "adapter_input_parallelized"  # the library's keyword: the batch is replicated per branch already
# inputs repeated per Parallel branch before decoding (tensors with the batch as first dimension)
_BATCHED_KWARGS = ("input_ids", "inputs_embeds", "attention_mask", "token_type_ids", "position_ids",
                   "decoder_input_ids", "decoder_attention_mask")
_ENCODER_INPUTS = ("output_attentions", "output_hidden_states")  # passed on to the encoder run besides the inputs
# (the model generating now, its Parallel channels): its get_encoder() hands transformers the encoder runner and its
# forwards get a batch replicated per branch already (transformers refuses unknown generate() keywords on 4.57)
_GENERATING: contextvars.ContextVar = contextvars.ContextVar("adapters_client_generating", default=(None, 1))


class GenerationSupport(GenerationMixin):
    """Mixed into ``AdapterModel`` (whose ``base_model``, ``config``, ``heads`` and engine it reads)."""

    _is_stateful = False

    @classmethod
    def can_generate(cls) -> bool:
        """True as for the library's AdapterModel classes; ``generate`` checks the active head when called."""
        return True

    @classmethod
    def is_remote_code(cls) -> bool:
        return False

    @property
    def dtype(self) -> torch.dtype:
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    @property
    def generation_config(self) -> GenerationConfig:
        """Decoding defaults, made from the model config on first use (as ``PreTrainedModel`` does)."""
        config = self.__dict__.get("_generation_config")
        if config is None:
            config = self.__dict__["_generation_config"] = GenerationConfig.from_model_config(self.config)
        return config

    @generation_config.setter
    def generation_config(self, value: GenerationConfig) -> None:
        self.__dict__["_generation_config"] = value

    def get_encoder(self, *args, **kwargs) -> nn.Module:
        """The base model's encoder; while ``generate`` runs, a runner that encodes through the whole model."""
        if _GENERATING.get()[0] is self:
            return _EncoderRunner(self)
        return self.base_model.get_encoder(*args, **kwargs)

    def get_decoder(self, *args, **kwargs) -> nn.Module:
        return self.base_model.get_decoder(*args, **kwargs)

    def get_experts_implementation(self) -> dict:
        getter = getattr(self.base_model, "get_experts_implementation", None)
        return getter() if getter is not None else {"": None}

    def set_experts_implementation(self, implementation) -> None:
        setter = getattr(self.base_model, "set_experts_implementation", None)
        if setter is not None:
            setter(implementation)

    @torch.no_grad()
    def generate(self, inputs: Optional[torch.Tensor] = None, **kwargs):
        """``transformers``' ``generate`` with the active adapters and the active LM head (or ``head=``).

        Greedy, sampling, beam search and every other decoding mode of the installed transformers; the KV
        cache is used (prefix tuning keeps its prefix outside it). Parallel: ``channels * batch`` rows come
        back, branch ``i`` in rows ``i * batch ... (i + 1) * batch - 1``.
        """
        if kwargs.get("adapter_names") is not None:  # a mixed-adapter batch: the active setup does not apply
            parent = super().generate
            return _generate_rows(self, inputs, kwargs, lambda kw: parent(inputs, **kw),
                                  check_heads=self._check_row_heads)
        channels = self._check_generation_setup(kwargs.get("head"))
        _no_cache_when_gated(self, kwargs)
        if channels > 1:
            inputs, kwargs = _replicate_for_branches(inputs, kwargs, channels)
        with _generating(self, channels):
            return super().generate(inputs, **kwargs)

    def _check_row_heads(self, names: list, head) -> None:
        """``generate(adapter_names=...)``: every row's head (``row_head_names``, the rule of ``forward_head_rows``)
        must be an LM head; ``InvalidHead``."""
        from .heads.errors import InvalidHead

        row_heads = self.row_head_names(names, head)
        missing = [row for row, name in enumerate(row_heads) if name is None]
        if missing:
            raise InvalidHead(f"generate() with adapter_names needs an LM head for every row; rows {missing} have "
                              f"none (their adapter has no head and no single head is active): pass head= or add "
                              f"the heads", field="head", rows=missing)
        self._require_lm_heads(dict.fromkeys(row_heads))

    def _require_lm_heads(self, names) -> None:
        from .heads.errors import InvalidHead

        for name in names:
            head_type = self._get_head(name).config.get("head_type")
            if head_type not in LM_HEAD_TYPES:
                raise InvalidHead(f"generate() needs a language-modelling head ({', '.join(LM_HEAD_TYPES)}); head "
                                  f"{name!r} is a {head_type!r} head", field="head", head=name)

    def _check_generation_setup(self, head) -> int:
        """How many Parallel branches the active setup has; ``InvalidHead`` / ``InvalidComposition`` when the heads
        that would run are not all LM heads, or the setup cannot generate."""
        from .heads.errors import InvalidHead

        setup, _ = self.adapter_engine.current_setup()
        _refuse_batch_split(setup, head_batch_sizes=getattr(self, "_head_batch_sizes", None))
        channels = _channels(setup)
        heads = getattr(self, "heads", {})
        if channels > 1:
            block = setup
            while isinstance(block, Stack):
                block = block.children[-1]
            names = [c if isinstance(c, str) else c.last() for c in block] if isinstance(block, Parallel) else []
            if head is not None or len(names) != channels or not all(n in heads for n in names):
                raise InvalidHead(f"generate() with {setup} needs one LM head per Parallel branch, named after the "
                                  f"branch (no head= argument); heads: {sorted(heads)}", field="head")
        else:
            names = [head] if head is not None else list(self._head_setup_names())
        if not names:
            raise InvalidHead("generate() needs an active LM head (add_causal_lm_head / add_seq2seq_lm_head, or "
                              "head=...); no head is active", field="head")
        self._require_lm_heads(names)
        if len(names) > 1 and channels == 1:
            raise InvalidHead(f"generate() runs one LM head at a time; the active heads are {names}", field="head")
        return channels


def read_generation_config(model, model_name_or_path, kwargs: dict) -> None:
    """``from_pretrained``: the decoding defaults saved next to the backbone (``generation_config.json``), as a
    generating ``PreTrainedModel`` reads them; without one they are made from the model config on first use."""
    options = {k: kwargs[k] for k in ("cache_dir", "local_files_only", "revision", "token", "subfolder") if k in kwargs}
    try:
        model.generation_config = GenerationConfig.from_pretrained(model_name_or_path, **options)
    except (OSError, ValueError):  # none saved there
        pass


def init_generation_members(original: type) -> dict:
    """``generate`` and ``get_encoder`` for a class wrapped by ``adapters_client.init()`` whose HF class can generate:
    transformers' own generate, with the same checks, Parallel replication and encoder runner as AdapterModel (the
    model's own head serves every row)."""
    if not getattr(original, "can_generate", lambda: False)():
        return {}

    @torch.no_grad()
    def generate(self, *args, **kwargs):
        if kwargs.get("adapter_names") is not None:  # a mixed-adapter batch: the active setup does not apply
            inputs = args[0] if args else kwargs.get("inputs")
            return _generate_rows(self, inputs, kwargs, lambda kw: original.generate(self, *args, **kw))
        setup, _ = self.adapter_engine.current_setup()
        _refuse_batch_split(setup)
        channels = _channels(setup)
        _no_cache_when_gated(self, kwargs)
        hooks = []
        if channels > 1:
            inputs, kwargs = _replicate_for_branches(args[0] if args else kwargs.pop("inputs", None), kwargs, channels)
            args = (inputs,) + tuple(args[1:])
            hooks = [self.register_forward_pre_hook(_open_replicated_forward, with_kwargs=True),
                     self.register_forward_hook(_close_replicated_forward, always_call=True)]
        try:
            with _generating(self, channels):
                return original.generate(self, *args, **kwargs)
        finally:
            for hook in hooks:
                hook.remove()

    def get_encoder(self, *args, **kwargs):
        if _GENERATING.get()[0] is self and getattr(self.config, "is_encoder_decoder", False):
            return _EncoderRunner(self)
        return original.get_encoder(self, *args, **kwargs)

    generate.__doc__ = original.generate.__doc__
    return {"generate": generate, "get_encoder": get_encoder}


_OPEN: contextvars.ContextVar = contextvars.ContextVar("adapters_client_generation_forwards", default=())


def _open_replicated_forward(model, args, kwargs):
    """Pre-hook of an ``init()``-wrapped model inside a Parallel ``generate``: a forward context that says the batch
    holds one copy per branch already (closed by ``_close_replicated_forward``)."""
    context = ForwardContext()
    state = context.__enter__()
    batched = dict(kwargs)
    batched.update({f"_arg{i}": v for i, v in enumerate(args)})
    mark_parallelized(model, state, batched)
    _OPEN.set(_OPEN.get() + (context,))
    return None


def _close_replicated_forward(model, args, output):
    opened = _OPEN.get()
    if opened:
        _OPEN.set(opened[:-1])
        opened[-1].__exit__(None, None, None)
    return None


@contextmanager
def _generating(model, channels: int):
    """While ``model.generate`` runs: its forwards know the batch holds ``channels`` copies already, and its
    ``get_encoder()`` hands transformers the encoder runner."""
    token = _GENERATING.set((model, channels))
    try:
        yield
    finally:
        _GENERATING.reset(token)


def _generate_rows(model, inputs, kwargs: dict, run, check_heads=None):
    """``generate(adapter_names=[...])``: the names as a per-row index tensor that transformers expands with the
    batch (generation_rows.py); ``run(kwargs)`` is the HF generate call."""
    names, kwargs, table = prepare_row_generation(model, inputs, kwargs)
    if check_heads is not None:
        check_heads(names, kwargs.get("head"))
    _no_cache_when_gated(model, kwargs, names)
    with _generating(model, 1), RowGeneration(model, table):
        return run(kwargs)


def _channels(setup) -> int:
    return setup.parallel_channels if isinstance(setup, (Parallel, Stack)) else 1


def _refuse_batch_split(setup, head_batch_sizes=None) -> None:
    if _has_batch_split(setup) or head_batch_sizes:
        raise InvalidComposition("generate() cannot run a BatchSplit setup (generation changes the batch: "
                                 "beams, Parallel branches); generate each part on its own", field="adapter_setup")


def mark_parallelized(model, state, base_inputs: dict) -> None:
    """In a forward with ``adapter_input_parallelized=True``: the batch already holds one copy per Parallel
    branch, so the engine must not replicate it again; sites and heads split it into the branches."""
    setup, _ = model.adapter_engine.current_setup()
    channels = _channels(setup)
    batch = next((v.shape[0] for v in base_inputs.values() if isinstance(v, torch.Tensor) and v.dim() > 1), None)
    if channels <= 1 or batch is None:
        return
    if batch % channels:
        raise InvalidComposition(f"adapter_input_parallelized: a batch of {batch} rows is not {channels} equal "
                                 f"Parallel branches", field=PARALLELIZED)
    state.original_batch_size = batch // channels
    state.parallel_channels = channels


def replicated_for_generation(model) -> bool:
    """Inside ``model.generate()`` with a Parallel setup: the inputs hold one copy per branch already."""
    owner, channels = _GENERATING.get()
    return owner is model and channels > 1


def _no_cache_when_gated(model, kwargs: dict, row_names: Optional[list] = None) -> None:
    """Gated adapters (``use_gating=True``: UniPELT, gated bottleneck / LoRA / prefix) average their gate over the
    positions of each forward, so a cached step (one position) gates differently from a full forward: without an
    explicit ``use_cache`` such setups decode without the cache, as the library's generate does (it recomputes the
    whole sequence at every step). ``row_names``: the adapters of a mixed batch, in place of the active setup."""
    if "use_cache" in kwargs:
        return
    if row_names is not None:
        names = {name for name in row_names if name is not None}
    else:
        setup, _ = model.adapter_engine.current_setup()
        if setup is None:
            return
        names = {setup} if isinstance(setup, str) else setup.flatten()
    configs = model.adapter_engine.configs
    if any(_gated(configs[name]) for name in names if name in configs):
        kwargs["use_cache"] = False


def _gated(config) -> bool:
    return bool(getattr(config, "use_gating", False)) or any(_gated(part) for part in getattr(config, "configs", ()))


def _has_batch_split(block) -> bool:
    if isinstance(block, BatchSplit):
        return True
    return any(_has_batch_split(c) for c in getattr(block, "children", ()) if not isinstance(c, str))


def _replicate_for_branches(inputs, kwargs: dict, channels: int):
    """Inputs and batched keyword inputs repeated ``channels`` times along the batch (branch-major order)."""
    def rep(value):
        if isinstance(value, torch.Tensor) and value.dim() > 0:
            return value.repeat(channels, *([1] * (value.dim() - 1)))
        return value

    if kwargs.get("encoder_outputs") is not None:
        raise InvalidComposition("generate() with a Parallel setup computes the encoder outputs itself (one copy "
                                 "per branch); do not pass encoder_outputs", field="encoder_outputs")
    kwargs = {k: (rep(v) if k in _BATCHED_KWARGS else v) for k, v in kwargs.items()}
    return rep(inputs), kwargs


class _EncoderRunner(nn.Module):
    """What ``generate`` gets from ``get_encoder()``: the encoder's outputs, computed by a forward of the whole
    base model with one decoder position (the decoder start token), so that the engine's base-model hooks run
    (prefix tuning on the encoder, Parallel, the first-forward audit) exactly as in a model forward."""

    main_input_name = "input_ids"

    def __init__(self, model):
        super().__init__()
        self.__dict__["owner"] = model  # not a submodule: the runner lives for one generate() call

    def forward(self, input_ids=None, inputs_embeds=None, attention_mask=None, return_dict=True, adapter_names=None,
                **kwargs):
        model = self.__dict__["owner"]
        rows = generation_plan(model, adapter_names)  # a mixed batch: each input row's own adapter, once per row
        batch = (input_ids if input_ids is not None else inputs_embeds).shape[0]
        device = (input_ids if input_ids is not None else inputs_embeds).device
        start = model.generation_config.decoder_start_token_id
        if start is None:
            start = getattr(model.config, "decoder_start_token_id", None)
        if start is None:
            start = model.config.pad_token_id if model.config.pad_token_id is not None else 0
        base_inputs = {"input_ids": input_ids, "inputs_embeds": inputs_embeds, "attention_mask": attention_mask,
                       "decoder_input_ids": torch.full((batch, 1), int(start), dtype=torch.long, device=device),
                       "use_cache": False}
        base_inputs.update({k: v for k, v in kwargs.items() if k in _ENCODER_INPUTS})
        base_inputs = {k: v for k, v in base_inputs.items() if v is not None}
        with ForwardContext() as state, (rows if rows is not None else nullcontext()):
            if replicated_for_generation(model):
                mark_parallelized(model, state, base_inputs)
            outputs = model.base_model(**base_inputs, return_dict=True)
        return BaseModelOutput(last_hidden_state=outputs.encoder_last_hidden_state,
                               hidden_states=outputs.encoder_hidden_states, attentions=outputs.encoder_attentions)
