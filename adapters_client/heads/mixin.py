"""``HeadsMixin``: named prediction heads on an adapter model (API of the ``adapters`` library 1.x).

The host is an ``nn.Module`` that sets ``self.heads = nn.ModuleDict()``, ``self.config`` (the HF
config) and ``self.base_model`` (the HF base model) in its ``__init__``.
"""

from __future__ import annotations

import copy
import logging

from transformers.utils import ModelOutput

from . import io
from .base import PredictionHead
from .dispatch import (eos_token_output, is_encoder_decoder, last_token_output, reads_last_token, refuses_head,
                       run_rows, run_split)
from .errors import InvalidHead
from .lm import CausalLMHead, MaskedLMHead, Seq2SeqLMHead
from .outputs import MultiHeadOutput
from .types import (
    ClassificationHead,
    MultiLabelClassificationHead,
    MultipleChoiceHead,
    QuestionAnsweringHead,
    TaggingHead,
)

logger = logging.getLogger(__name__)

HEAD_CLASSES = {
    cls.head_type: cls
    for cls in (ClassificationHead, MultiLabelClassificationHead, MultipleChoiceHead, TaggingHead,
                QuestionAnsweringHead, CausalLMHead, MaskedLMHead, Seq2SeqLMHead)
}
# Head types a decoder-only backbone cannot serve (as in the library's per-model head lists).
_ENCODER_ONLY_TYPES = frozenset({"multiple_choice", "masked_lm"})


def head_names_of(setup) -> list[str]:
    """Head names for an active-head setting: a name, a list of names, or a block's branches.

    A ``Stack`` stands for its last child (as in the library); other blocks give one name per child.
    """
    if setup is None or setup == "":
        return []
    if isinstance(setup, str):
        return [setup]
    children = list(getattr(setup, "children", setup))
    if type(setup).__name__ == "Stack":
        children = children[-1:]
    return [child if isinstance(child, str) else head_names_of(child)[-1] for child in children]


def head_setup_for(adapter_setup, available) -> object:
    """The head setting the library derives from an adapter setup, or None when heads are missing.

    ``Stack`` -> its last adapter; ``Parallel`` -> one head per branch; ``BatchSplit`` -> itself
    (heads per chunk); a single name -> that name; anything else (``Fuse``, ``Average``) -> None.
    """
    block = adapter_setup
    if type(block).__name__ == "Stack":
        block = block.children[-1]
    if isinstance(block, str):
        names, result = [block], block
    elif type(block).__name__ in ("Parallel", "BatchSplit"):
        names, result = head_names_of(block), block
    else:
        return None
    return result if names and all(name in available for name in names) else None


def _active_invertible_block(model):
    """The invertible block of ``model``'s active setup (methods/invertible), or None without one or an engine."""
    if getattr(model, "adapter_engine", None) is None:
        return None
    from ..methods.invertible import inverse_for_heads

    return inverse_for_heads(model)


class HeadsMixin:
    """Adds, runs, saves and loads prediction heads."""

    # ---- registry -------------------------------------------------------------------------
    def supports_head_type(self, head_type: str) -> bool:
        if head_type not in HEAD_CLASSES:
            return False
        model_type = getattr(self.config, "model_type", "")
        if refuses_head(model_type, head_type):  # the architecture row: the library does not offer it
            return False
        if head_type == "seq2seq_lm" and not is_encoder_decoder(model_type):
            return False
        return not (reads_last_token(model_type) and head_type in _ENCODER_ONLY_TYPES)

    def build_head(self, head_type: str, name: str, **config) -> PredictionHead:
        """A new head of ``head_type`` (not yet added); ``config`` are the head class's arguments."""
        if not self.supports_head_type(head_type):
            raise InvalidHead(
                f"Head type '{head_type}' is not supported by model type '{self.config.model_type}'.",
                head_type=head_type,
            )
        head = HEAD_CLASSES[head_type](self.config, name, training=self.training, **config)
        reference = next(self.base_model.parameters(), None)
        if reference is not None:
            head.to(device=reference.device, dtype=reference.dtype)
        return head

    def add_prediction_head(self, head: PredictionHead, overwrite_ok: bool = False, set_active: bool = True):
        """Register ``head`` under ``head.name`` (tying LM output weights) and optionally activate it."""
        if head.name in self.heads and not overwrite_ok:
            raise InvalidHead(
                f"Model already contains a head with name '{head.name}'. Use overwrite_ok=True to force overwrite.",
                head=head.name,
            )
        if head.config.get("label2id", "absent") is None:
            count = head.config.get("num_labels", head.config.get("num_choices"))
            if count is not None:
                head.config["label2id"] = {f"LABEL_{i}": i for i in range(count)}
        self.heads[head.name] = head
        if not hasattr(self.config, "prediction_heads") or self.config.prediction_heads is None:
            self.config.prediction_heads = {}
        self.config.prediction_heads[head.name] = head.config
        self.tie_head_weights(head)
        if set_active:
            self.active_head = head.name

    def add_prediction_head_from_config(self, head_name: str, config: dict, overwrite_ok: bool = False,
                                        set_active: bool = True):
        """Add a head from its saved config dict (``head_type`` plus the head's arguments)."""
        head = self.build_head_from_config(head_name, config)
        self.add_prediction_head(head, overwrite_ok=overwrite_ok, set_active=set_active)

    def build_head_from_config(self, head_name: str, config: dict) -> PredictionHead:
        config = dict(config)
        head_type = config.pop("head_type", None)
        id2label = config.pop("id2label", None)
        label2id = config.pop("label2id", None)
        if id2label is None and label2id is not None:
            id2label = {int(index): label for label, index in label2id.items()}
        if id2label is not None:
            config["id2label"] = {int(index): label for index, label in id2label.items()}
        if head_type not in HEAD_CLASSES:
            raise InvalidHead(f"Unknown head type '{head_type}'; known: {sorted(HEAD_CLASSES)}.", head_type=head_type)
        return self.build_head(head_type, head_name, **config)

    def tie_head_weights(self, head: PredictionHead | None = None) -> None:
        """Share LM heads' output projection with the input embeddings (when the config ties them)."""
        for item in [head] if head is not None else list(self.heads.values()):
            if self.head_will_tie(item):
                item.get_output_embeddings().weight = self.base_model.get_input_embeddings().weight

    def head_will_tie(self, head: PredictionHead) -> bool:
        output = head.get_output_embeddings()
        if output is None or not getattr(self.config, "tie_word_embeddings", True):
            return False
        embeddings = self.base_model.get_input_embeddings()
        return embeddings is not None and embeddings.weight.shape == output.weight.shape

    def delete_head(self, head_name: str) -> None:
        """Remove a head (no-op with a log line when it does not exist)."""
        if head_name not in self.heads:
            logger.info("No prediction head '%s' found for deletion. Skipping.", head_name)
            return
        del self.heads[head_name]
        getattr(self.config, "prediction_heads", {}).pop(head_name, None)
        remaining = [name for name in self._head_setup_names() if name != head_name]
        self._active_heads = remaining or None
        if len(remaining) != len(self._head_setup_names()):
            self._head_batch_sizes = None

    def get_head_config(self, head_name: str) -> dict:
        return copy.deepcopy(self._get_head(head_name).config)

    def get_prediction_heads_config(self) -> dict:
        return {name: copy.deepcopy(head.config) for name, head in self.heads.items()}

    def get_labels_dict(self, head_name: str | None = None) -> dict | None:
        """``id2label`` of the head (default: the active one)."""
        head_name = head_name or self.active_head
        if not isinstance(head_name, str):
            raise InvalidHead("No head name given and no single active head in the model.")
        label2id = self._get_head(head_name).config.get("label2id")
        return {index: label for label, index in label2id.items()} if label2id else None

    def get_labels(self, head_name: str | None = None) -> list | None:
        labels = self.get_labels_dict(head_name)
        return None if labels is None else list(labels.values())

    def _get_head(self, name: str) -> PredictionHead:
        if name not in self.heads:
            raise InvalidHead(f"Unknown head_name '{name}'; available: {sorted(self.heads)}.", head=name)
        return self.heads[name]

    # ---- the active head ------------------------------------------------------------------
    def _head_setup_names(self) -> list[str]:
        return list(getattr(self, "_active_heads", None) or [])

    @property
    def active_head(self):
        """The active head: None, a name, or a list of names (a BatchSplit setting keeps its sizes)."""
        names = self._head_setup_names()
        if not names:
            return None
        return names[0] if len(names) == 1 and not getattr(self, "_head_batch_sizes", None) else names

    @active_head.setter
    def active_head(self, setup) -> None:
        names = head_names_of(setup)
        for name in names:
            self._get_head(name)
        self._active_heads = names or None
        sizes = getattr(setup, "batch_sizes", None)
        self._head_batch_sizes = list(sizes) if sizes is not None else None
        if len(names) == 1:
            label2id = self.heads[names[0]].config.get("label2id")
            if label2id:
                self.config.label2id = dict(label2id)
                self.config.id2label = {index: label for label, index in label2id.items()}

    # ---- adding heads (library signatures) --------------------------------------------------
    def add_classification_head(self, head_name, num_labels=2, layers=2, activation_function="tanh",
                                overwrite_ok=False, multilabel=False, id2label=None, use_pooler=False,
                                set_active=True):
        """Sequence classification (``num_labels=1``: regression; ``multilabel=True``: BCE loss)."""
        head_type = "multilabel_classification" if multilabel else "classification"
        head = self.build_head(head_type, head_name, num_labels=num_labels, layers=layers,
                               activation_function=activation_function, id2label=id2label, use_pooler=use_pooler)
        self.add_prediction_head(head, overwrite_ok, set_active)

    def add_multilabel_classification_head(self, head_name, num_labels=2, layers=2, activation_function="tanh",
                                           overwrite_ok=False, id2label=None, use_pooler=False, set_active=True):
        self.add_classification_head(head_name, num_labels, layers, activation_function, overwrite_ok,
                                     multilabel=True, id2label=id2label, use_pooler=use_pooler,
                                     set_active=set_active)

    def add_multiple_choice_head(self, head_name, num_choices=2, layers=2, activation_function="tanh",
                                 overwrite_ok=False, id2label=None, use_pooler=False, set_active=True):
        head = self.build_head("multiple_choice", head_name, num_choices=num_choices, layers=layers,
                               activation_function=activation_function, id2label=id2label, use_pooler=use_pooler)
        self.add_prediction_head(head, overwrite_ok, set_active)

    def add_tagging_head(self, head_name, num_labels=2, layers=1, activation_function="tanh", overwrite_ok=False,
                         id2label=None, set_active=True):
        head = self.build_head("tagging", head_name, num_labels=num_labels, layers=layers,
                               activation_function=activation_function, id2label=id2label)
        self.add_prediction_head(head, overwrite_ok, set_active)

    def add_qa_head(self, head_name, num_labels=2, layers=1, activation_function="tanh", overwrite_ok=False,
                    id2label=None, set_active=True):
        head = self.build_head("question_answering", head_name, num_labels=num_labels, layers=layers,
                               activation_function=activation_function, id2label=id2label)
        self.add_prediction_head(head, overwrite_ok, set_active)

    def add_causal_lm_head(self, head_name, activation_function="gelu", layers=2, overwrite_ok=False,
                           set_active=True):
        """Causal LM head; the library's defaults (2 layers, gelu, layer norm, bias); output tied."""
        head = self.build_head("causal_lm", head_name, layers=layers, activation_function=activation_function,
                               layer_norm=True, bias=True)
        self.add_prediction_head(head, overwrite_ok, set_active)

    def add_seq2seq_lm_head(self, head_name, layers=1, overwrite_ok=False, set_active=True):
        """Sequence-to-sequence LM head on the decoder output (encoder-decoder models); output tied."""
        head = self.build_head("seq2seq_lm", head_name, layers=layers)
        self.add_prediction_head(head, overwrite_ok, set_active)

    def add_masked_lm_head(self, head_name, activation_function="gelu", layers=2, overwrite_ok=False,
                           set_active=True):
        head = self.build_head("masked_lm", head_name, layers=layers, activation_function=activation_function)
        self.add_prediction_head(head, overwrite_ok, set_active)

    # ---- forward --------------------------------------------------------------------------
    def forward_head(self, outputs, head_name=None, cls_output=None, attention_mask=None, labels=None,
                     return_dict=True, parallel_names=None, **kwargs):
        """Run the head(s) on the base model's ``outputs``; without any head, return them unchanged.

        ``parallel_names``: the batch holds one equal chunk per Parallel branch; head ``names[i]``
        runs on chunk ``i`` and a :class:`MultiHeadOutput` (``loss`` = sum) comes back.
        """
        common = dict(cls_output=cls_output, attention_mask=attention_mask, labels=labels)
        if kwargs.get("invertible_adapter") is None:  # LM heads undo the active invertible adapter (the library's)
            kwargs.pop("invertible_adapter", None)
            inverse = _active_invertible_block(self)
            if inverse is not None:
                kwargs["invertible_adapter"] = inverse
        parallel_names = parallel_names or self._parallel_heads_from_context(head_name)
        if parallel_names:
            names = list(parallel_names)
            total = outputs[0].shape[0]
            if total % len(names):
                raise InvalidHead(f"Batch of {total} rows is not {len(names)} equal Parallel chunks.")
            result = run_split(self, outputs, names, [total // len(names)] * len(names), **common, kwargs=kwargs)
        elif head_name:
            result = self._run_head(head_name, outputs, **common, **kwargs)
        elif getattr(self, "_head_batch_sizes", None):
            result = run_split(self, outputs, self._head_setup_names(), self._head_batch_sizes, **common,
                               kwargs=kwargs)
        elif len(self._head_setup_names()) > 1:
            results = [self._run_head(name, outputs, **common, **kwargs) for name in self._head_setup_names()]
            result = MultiHeadOutput(head_outputs=results)
        elif self._head_setup_names():
            result = self._run_head(self._head_setup_names()[0], outputs, **common, **kwargs)
        else:
            return outputs
        if not return_dict and isinstance(result, ModelOutput) and not isinstance(result, MultiHeadOutput):
            return result.to_tuple()
        return result

    def forward_head_rows(self, outputs, adapter_names: list, head_name=None, cls_output=None, attention_mask=None,
                          labels=None, return_dict=True, **kwargs):
        """The heads of a mixed-adapter batch (``adapter_names``, one adapter or None per row).

        Row ``i`` gets ``head_name`` when given, else the head named after its adapter, else the active head
        (a single name), as a forward of that row alone after ``set_active_adapters(adapter_names[i])``
        would. No row with a head: ``outputs`` unchanged. Some rows without one, heads whose outputs differ
        in kind or shape, multiple-choice heads or ``labels``: ``InvalidHead``.
        """
        row_heads = self.row_head_names(adapter_names, head_name)
        if all(name is None for name in row_heads):
            return outputs
        missing = [row for row, name in enumerate(row_heads) if name is None]
        if missing:
            raise InvalidHead(f"Rows {missing} of the mixed-adapter batch have no head (their adapter has none and "
                              f"no single head is active) while other rows do; pass head= or add the heads.",
                              rows=missing)
        if labels is not None:
            raise InvalidHead("labels are not supported with adapter_names (inference only); compute the loss from "
                              "the logits.")
        for name in set(row_heads):
            if self.heads[name].head_type == "multiple_choice":
                raise InvalidHead(f"Multiple-choice head '{name}' cannot serve a mixed-adapter batch.", head=name)
        result = run_rows(self, outputs, row_heads, cls_output, attention_mask, kwargs)
        if not return_dict:
            return result.to_tuple()
        return result

    def row_head_names(self, adapter_names: list, head_name=None) -> list:
        """The head of each row of a mixed-adapter batch: ``head_name`` when given, else the head named after the
        row's adapter, else the single active head; None where there is none."""
        if head_name:
            self._get_head(head_name)
            return [head_name] * len(adapter_names)
        active = self._head_setup_names()
        fallback = active[0] if len(active) == 1 and not getattr(self, "_head_batch_sizes", None) else None
        return [name if name is not None and name in self.heads else fallback for name in adapter_names]

    def _parallel_heads_from_context(self, head_name):
        """Inside a forward pass whose batch a Parallel block replicated: the active heads, one per branch."""
        if head_name:
            return None
        try:
            from ..context import ForwardContext
        except ImportError:  # engine not present
            return None
        state = ForwardContext.current()
        channels = getattr(state, "parallel_channels", 1) or 1
        names = self._head_setup_names()
        if channels <= 1 or not names or getattr(self, "_head_batch_sizes", None):
            return None
        if len(names) != channels:
            raise InvalidHead(f"The batch holds {channels} Parallel branches but the active heads are {names}.")
        return names

    def _run_head(self, name, outputs, cls_output=None, attention_mask=None, labels=None, input_ids=None,
                  **kwargs):
        head = self._get_head(name)
        uses_cls = "use_pooler" in head.config and not head.config["use_pooler"]
        if cls_output is None and uses_cls and reads_last_token(self.config.model_type):
            pad = getattr(self.config, "pad_token_id", None)
            cls_output = last_token_output(outputs[0], input_ids, pad)
        elif cls_output is None and uses_cls and is_encoder_decoder(self.config.model_type):
            # the library's get_cls_from_eos_tokens: the decoder output at the last <eos> of input_ids (T5: the
            # output before its tied-embedding scaling, ``eos_hidden``)
            hidden = kwargs.get("eos_hidden")
            cls_output = eos_token_output(outputs[0] if hidden is None else hidden, input_ids,
                                          kwargs.pop("eos_mask", None), getattr(self.config, "eos_token_id", None))
        kwargs.pop("eos_hidden", None)
        return head(outputs, cls_output=cls_output, attention_mask=attention_mask, labels=labels, **kwargs)

    # ---- saving and loading ---------------------------------------------------------------
    def save_head(self, save_directory: str, head_name: str | None = None, **_compat) -> None:
        """Write head_config.json + model_head.safetensors (the library's format and keys)."""
        io.save_head(self, save_directory, head_name or self._single_head_name())
        return None

    def load_head(self, save_directory: str, load_as: str | None = None, id2label: dict | None = None,
                  set_active: bool = True, allow_pickle: bool = False, **_compat) -> str | None:
        """Load a saved head (strict); returns its name, or None when the folder holds no head."""
        return io.load_head(self, save_directory, load_as=load_as, id2label=id2label, set_active=set_active,
                            allow_pickle=allow_pickle)

    def _single_head_name(self) -> str:
        if len(self.heads) != 1:
            raise InvalidHead(f"Name the head to save; the model has {len(self.heads)} heads.")
        return next(iter(self.heads))
