"""AdapterModel (a HF base model + prediction heads + adapters), AutoAdapterModel and ``init``."""

from __future__ import annotations

import inspect
from contextlib import nullcontext
from typing import Optional

from torch import nn

from .architectures import get_spec
from .composition import Parallel, Stack
from .context import ForwardContext, task_context
from .errors import InvalidComposition
from .generation import (PARALLELIZED, GenerationSupport, init_generation_members, mark_parallelized,
                         read_generation_config, replicated_for_generation)
from .generation_rows import generation_plan
from .model_mixin import ModelAdaptersMixin

try:  # prediction heads live in heads/ (another module); the model works without them
    from .heads import HeadsMixin as _HeadsBase
    from .heads import HEAD_KWARGS as _HEAD_KWARGS
except ImportError:  # pragma: no cover - only while heads/ does not exist yet
    _HEAD_KWARGS = frozenset({"cls_output", "start_positions", "end_positions"})

    class _HeadsBase:  # type: ignore[no-redef]
        """Stand-in while heads/ is missing: no heads, the base model output is returned."""

class AdapterModel(_HeadsBase, ModelAdaptersMixin, GenerationSupport, nn.Module):
    """A Hugging Face base model with adapters and flexible prediction heads.

    State-dict keys match the adapters library's ``*AdapterModel`` classes (``bert.…``, ``heads.<name>.…``).
    """

    def __init__(self, base_model: nn.Module):
        nn.Module.__init__(self)
        spec = get_spec(base_model.config.model_type)
        self.base_model_prefix = spec.base_prefix
        self.add_module(spec.base_prefix, base_model)
        self.heads = nn.ModuleDict()
        self.config = base_model.config
        self.main_input_name = getattr(base_model, "main_input_name", "input_ids")
        self._init_adapter_engine()

    @property
    def base_model(self) -> nn.Module:
        return getattr(self, self.base_model_prefix)

    @property
    def model_class_name(self) -> str:
        """The adapters library's class name (the architecture row's ``model_class``), for adapter_config.json."""
        return self.adapter_engine.spec.model_class

    @property
    def device(self):
        return next(self.parameters()).device

    def get_input_embeddings(self) -> nn.Module:
        return self.base_model.get_input_embeddings()

    @classmethod
    def from_pretrained(cls, model_name_or_path, **kwargs) -> "AdapterModel":
        """Load the backbone with ``transformers.AutoModel.from_pretrained`` and wrap it.

        A folder written by ``save_pretrained`` also gets its adapters, fusions, heads and active setup back.
        """
        from transformers import AutoModel

        from .pretrained import restore_saved_parts

        model = cls(AutoModel.from_pretrained(model_name_or_path, **kwargs))
        restore_saved_parts(model, model_name_or_path)
        read_generation_config(model, model_name_or_path, kwargs)
        return model

    def save_pretrained(self, save_directory, **kwargs) -> None:
        """Save backbone, adapters, fusions, heads and the active setup (reload with ``from_pretrained``)."""
        from .pretrained import save_pretrained

        save_pretrained(self, save_directory, **kwargs)

    @classmethod
    def from_config(cls, config, **kwargs) -> "AdapterModel":
        """A randomly initialised backbone built from a HF config."""
        from transformers import AutoModel

        return cls(AutoModel.from_config(config, **kwargs))

    def forward(self, input_ids=None, attention_mask=None, token_type_ids=None, position_ids=None,
                inputs_embeds=None, labels=None, head: Optional[str] = None, output_attentions=None,
                output_hidden_states=None, return_dict=None, output_adapter_gating_scores: bool = False,
                output_adapter_fusion_attentions: bool = False, adapter_names: Optional[list] = None, task_ids=None,
                **kwargs):
        """Run the base model with the active adapters, then the active (or given) head if there is one.

        Inputs of shape (batch, choices, length) (multiple choice) are flattened to (batch * choices, length)
        first, as in the adapters library; the heads see the flattened mask.

        ``adapter_names``: a mixed-adapter batch (inference only): one adapter name per row, or None for a
        row without adapter. It replaces the active setup for this call only; the backbone runs once and each
        layer applies every row's adapter to that row; each row gets its adapter's head (forward_head_rows).
        ``task_ids``: for a ``MultiTask`` setup, each row's child (index or adapter name; methods/lora/mtl.py).
        """
        rows = generation_plan(self, adapter_names)  # inside generate(adapter_names=...): a per-row index tensor
        if rows is None:
            rows = self._row_adapters(adapter_names, input_ids if input_ids is not None else inputs_embeds,
                                      feature_dims=1 if input_ids is not None else 2)
        input_ids, attention_mask, token_type_ids, position_ids = (
            _flatten_choices(t, 1) for t in (input_ids, attention_mask, token_type_ids, position_ids))
        inputs_embeds = _flatten_choices(inputs_embeds, 2)
        base_inputs = {
            "input_ids": input_ids, "attention_mask": attention_mask, "token_type_ids": token_type_ids,
            "position_ids": position_ids, "inputs_embeds": inputs_embeds, "output_attentions": output_attentions,
            "output_hidden_states": output_hidden_states,
        }
        base_inputs = {k: v for k, v in base_inputs.items() if v is not None}
        kwargs.pop("num_items_in_batch", None)  # passed by the HF Trainer; the backbone does not take it
        # generate() with Parallel (or the library's keyword): the batch holds one copy per branch already
        parallelized = kwargs.pop(PARALLELIZED, False) or replicated_for_generation(self)
        head_kwargs = {k: kwargs.pop(k) for k in list(kwargs) if k in _HEAD_KWARGS or k.startswith("head_")}
        head_kwargs["input_ids"] = input_ids  # decoder heads pick their token by input_ids != pad_token_id
        base_inputs.update(kwargs)
        spec = self.adapter_engine.spec
        if spec.encoder_decoder:  # T5: decoder inputs from input_ids / labels
            from .encoder_decoder import fill_decoder_inputs

            fill_decoder_inputs(self, spec, base_inputs, labels, head)
        with ForwardContext() as state, (rows if rows is not None else nullcontext()), \
                task_context(task_ids, adapter_names):
            # heads run inside it too (they may read the Parallel state)
            state.extras["output_gating"] = output_adapter_gating_scores
            state.extras["output_fusion"] = output_adapter_fusion_attentions
            if parallelized:
                mark_parallelized(self, state, base_inputs)
            outputs = self.base_model(**base_inputs, return_dict=True)
            if spec.tied_output_scale:  # T5: the library's scaling before the heads
                from .encoder_decoder import scale_tied_output

                scale_tied_output(self, spec, outputs, head_kwargs)
            if output_adapter_gating_scores:
                outputs["adapter_gating_scores"] = state.gating_scores
            if output_adapter_fusion_attentions:
                outputs["adapter_fusion_attentions"] = state.extras.get("fusion_attentions", {})
            if rows is not None:
                return self._row_heads(outputs, rows, head, attention_mask, labels, return_dict, head_kwargs)
            return self._adapter_model_head(outputs, state, head, attention_mask, labels, return_dict, head_kwargs)

    def _row_adapters(self, adapter_names, batched, feature_dims: int):
        return _row_plan(self, adapter_names, batched, feature_dims)

    def _row_heads(self, outputs, rows, head, attention_mask, labels, return_dict, head_kwargs):
        if not hasattr(self, "forward_head_rows"):
            return outputs
        return self.forward_head_rows(outputs, rows.names, head_name=head, attention_mask=attention_mask,
                                      labels=labels, return_dict=return_dict if return_dict is not None else True,
                                      **head_kwargs)

    def _adapter_model_head(self, outputs, state, head, attention_mask, labels, return_dict, head_kwargs):
        """The active (or named) head on the base model outputs; the outputs themselves without a head."""
        parallel_names = self._parallel_names(state)
        if parallel_names and attention_mask is not None and attention_mask.shape[0] == state.original_batch_size:
            attention_mask = attention_mask.repeat(len(parallel_names), 1)  # not when replicated before (generate)
        if state.extras.get("attention_mask") is not None:
            attention_mask = state.extras["attention_mask"]
        if state.extras.get("prompt_tokens_length"):
            head_kwargs.setdefault("prompt_tokens_length", state.extras["prompt_tokens_length"])
        if not hasattr(self, "forward_head"):
            return outputs
        if head is None and not parallel_names and getattr(self, "active_head", None) is None:
            return outputs
        if head is None and parallel_names and not all(n in self.heads for n in parallel_names):
            return outputs
        return self.forward_head(outputs, head_name=head, attention_mask=attention_mask, labels=labels,
                                 return_dict=return_dict if return_dict is not None else True,
                                 parallel_names=parallel_names, **head_kwargs)

    def _parallel_names(self, state) -> Optional[list]:
        if state.parallel_channels <= 1:
            return None
        setup, _ = self.adapter_engine.current_setup()
        block = setup
        while isinstance(block, Stack):
            block = block.children[-1]
        if isinstance(block, Parallel):
            return [c if isinstance(c, str) else c.last() for c in block]
        return None


def _flatten_choices(tensor, feature_dims: int):
    """(batch, choices, *features) -> (batch * choices, *features); other shapes unchanged."""
    if tensor is None or tensor.dim() <= feature_dims + 1:
        return tensor
    return tensor.reshape(-1, *tensor.shape[-feature_dims:])


class AutoAdapterModel:
    """Builds an ``AdapterModel`` for any supported architecture (bert, roberta, xlm-roberta, distilbert, gpt2, electra,
    deberta-v2, llama, bart, t5, ...; ``architectures.ARCHITECTURES`` holds the rows)."""

    def __init__(self, *args, **kwargs):
        raise TypeError("use AutoAdapterModel.from_pretrained(...) or AutoAdapterModel.from_config(...)")

    @staticmethod
    def from_pretrained(model_name_or_path, **kwargs) -> AdapterModel:
        return AdapterModel.from_pretrained(model_name_or_path, **kwargs)

    @staticmethod
    def from_config(config, **kwargs) -> AdapterModel:
        return AdapterModel.from_config(config, **kwargs)


def _row_plan(model, adapter_names, batched, feature_dims: int):
    """The engine's per-row plan for ``adapter_names`` (None when not given). Multiple-choice inputs
    (batch, choices, ...) take one name per example, repeated for each of its choices."""
    if adapter_names is None:
        return None
    if batched is None:
        raise InvalidComposition("adapter_names needs input_ids or inputs_embeds (one name per row)")
    names = adapter_names
    if batched.dim() > feature_dims + 1 and isinstance(names, (list, tuple)) and len(names) == batched.shape[0]:
        names = [name for name in names for _ in range(batched.shape[1])]
    rows = batched.shape[0] * (batched.shape[1] if batched.dim() > feature_dims + 1 else 1)
    return model.adapter_engine.row_adapters(names, rows, model.training)


def _forward_with_rows(original_forward):
    """``original_forward`` (an ``init()``-wrapped model's own forward) taking ``adapter_names`` too: a
    mixed-adapter batch, one adapter name (or None) per row, for this call only. The model's own head
    (if any) runs on every row as usual. The signature is the original's plus the keyword, so the HF
    Trainer's column filter and ``generate``'s keyword check still see the model's real arguments."""
    signature = inspect.signature(original_forward)
    if "adapter_names" in signature.parameters:  # a model of our own making: nothing to add
        return original_forward
    bind = signature.bind_partial

    def forward(self, *args, adapter_names=None, task_ids=None, **kwargs):
        if adapter_names is None:
            with task_context(task_ids):  # MultiTask routing (methods/lora/mtl.py)
                return original_forward(self, *args, **kwargs)
        if task_ids is not None:
            task_context(task_ids, adapter_names)  # both given: refused
        rows = generation_plan(self, adapter_names)  # inside generate(adapter_names=...): a per-row index tensor
        if rows is None:
            given = bind(self, *args, **kwargs).arguments
            if given.get("input_ids") is not None:
                rows = _row_plan(self, adapter_names, given["input_ids"], feature_dims=1)
            else:
                rows = _row_plan(self, adapter_names, given.get("inputs_embeds"), feature_dims=2)
        with rows:
            return original_forward(self, *args, **kwargs)

    params = list(signature.parameters.values())
    keywords = [inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=None)
                for name in ("adapter_names", "task_ids")]
    at = next((i for i, p in enumerate(params) if p.kind is inspect.Parameter.VAR_KEYWORD), len(params))
    forward.__signature__ = signature.replace(parameters=params[:at] + keywords + params[at:])
    forward.__doc__ = original_forward.__doc__
    forward.__name__ = "forward"
    forward.__qualname__ = getattr(original_forward, "__qualname__", "forward")
    return forward


def init(model: nn.Module) -> nn.Module:
    """Add adapter support (add_adapter, set_active_adapters, ...) to an already-built HF model in place.

    Its forward also takes ``adapter_names=[...]`` (a mixed-adapter batch; see ``AdapterModel.forward``) and
    ``task_ids`` (MultiTask routing)."""
    if isinstance(model, ModelAdaptersMixin):
        return model
    get_spec(model.config.model_type)
    original = type(model)
    namespace = {"__module__": original.__module__, "forward": _forward_with_rows(original.forward)}
    namespace.update(init_generation_members(original))  # generate() with adapters (Parallel, encoder prefix)
    model.__class__ = type(original.__name__, (ModelAdaptersMixin, original), namespace)
    model._init_adapter_engine()
    return model
