"""Classification, multi-label, multiple-choice, tagging and question-answering heads."""

from __future__ import annotations

import torch
from torch.nn import BCEWithLogitsLoss, CrossEntropyLoss, MSELoss
from transformers.modeling_outputs import (
    MultipleChoiceModelOutput,
    QuestionAnsweringModelOutput,
    SequenceClassifierOutput,
    TokenClassifierOutput,
)

from .base import PredictionHead, labels_map, passthrough


def _classification_config(head_type, num_labels, layers, activation_function, id2label, use_pooler, bias, dropout_prob):
    return {
        "head_type": head_type,
        "num_labels": num_labels,
        "layers": layers,
        "activation_function": activation_function,
        "label2id": labels_map(id2label),
        "use_pooler": use_pooler,
        "bias": bias,
        "dropout_prob": dropout_prob,
    }


class ClassificationHead(PredictionHead):
    """Sequence classification; ``num_labels=1`` is regression (MSE loss)."""

    head_type = "classification"

    def __init__(self, model_config, name, num_labels=2, layers=2, activation_function="tanh", id2label=None,
                 use_pooler=False, bias=True, dropout_prob=None, training=False):
        super().__init__(name)
        self.config = _classification_config(
            self.head_type, num_labels, layers, activation_function, id2label, use_pooler, bias, dropout_prob
        )
        self.build(model_config, training)

    def loss(self, logits, labels):
        num_labels = self.config["num_labels"]
        if num_labels == 1:
            return MSELoss()(logits.view(-1), labels.view(-1).to(logits.dtype))
        return CrossEntropyLoss()(logits.view(-1, num_labels), labels.view(-1))

    def forward(self, outputs, cls_output=None, attention_mask=None, labels=None, pooled_output=None, **kwargs):
        logits = super().forward(self.select_cls(outputs, cls_output, pooled_output))
        loss = self.loss(logits, labels) if labels is not None else None
        return SequenceClassifierOutput(loss=loss, logits=logits, **passthrough(outputs))


class MultiLabelClassificationHead(ClassificationHead):
    """Multi-label classification: one sigmoid per label, BCE-with-logits loss."""

    head_type = "multilabel_classification"

    def loss(self, logits, labels):
        return BCEWithLogitsLoss()(logits, labels.to(logits.dtype))


class MultipleChoiceHead(PredictionHead):
    """Scores each (question, choice) row; logits are reshaped to ``(batch, num_choices)``."""

    head_type = "multiple_choice"

    def __init__(self, model_config, name, num_choices=2, layers=2, activation_function="tanh", id2label=None,
                 use_pooler=False, dropout_prob=None, training=False):
        super().__init__(name)
        self.config = {
            "head_type": self.head_type,
            "num_choices": num_choices,
            "layers": layers,
            "activation_function": activation_function,
            "label2id": labels_map(id2label),
            "use_pooler": use_pooler,
            "dropout_prob": dropout_prob,
        }
        self.build(model_config, training)

    def forward(self, outputs, cls_output=None, attention_mask=None, labels=None, pooled_output=None, **kwargs):
        scores = super().forward(self.select_cls(outputs, cls_output, pooled_output))
        logits = scores.view(-1, self.config["num_choices"])
        loss = CrossEntropyLoss()(logits, labels) if labels is not None else None
        return MultipleChoiceModelOutput(loss=loss, logits=logits, **passthrough(outputs))


def _token_config(head_type, num_labels, layers, activation_function, id2label, dropout_prob):
    return {
        "head_type": head_type,
        "num_labels": num_labels,
        "layers": layers,
        "activation_function": activation_function,
        "label2id": labels_map(id2label),
        "dropout_prob": dropout_prob,
    }


def prepend_ignored(labels, attention_mask, prompt_length: int, ignore_index: int):
    """Labels (and mask) extended for prompt-tuning tokens that were prepended to the input."""
    if not prompt_length:
        return labels, attention_mask
    pad = torch.full((labels.shape[0], prompt_length), ignore_index, dtype=labels.dtype, device=labels.device)
    labels = torch.cat((pad, labels), dim=-1)
    if attention_mask is not None:
        ones = torch.ones((labels.shape[0], prompt_length), dtype=attention_mask.dtype, device=labels.device)
        attention_mask = torch.cat((ones, attention_mask), dim=-1)
    return labels, attention_mask


class TaggingHead(PredictionHead):
    """Token classification; the loss ignores positions masked out by ``attention_mask``."""

    head_type = "tagging"

    def __init__(self, model_config, name, num_labels=2, layers=1, activation_function="tanh", id2label=None,
                 dropout_prob=None, training=False):
        super().__init__(name)
        self.config = _token_config(self.head_type, num_labels, layers, activation_function, id2label, dropout_prob)
        self.build(model_config, training)

    def forward(self, outputs, cls_output=None, attention_mask=None, labels=None, **kwargs):
        logits = super().forward(outputs[0])
        loss = None
        if labels is not None:
            loss_fct = CrossEntropyLoss()
            labels, attention_mask = prepend_ignored(
                labels, attention_mask, kwargs.get("prompt_tokens_length") or 0, loss_fct.ignore_index
            )
            flat_labels = labels.reshape(-1)
            if attention_mask is not None:
                ignored = torch.full_like(flat_labels, loss_fct.ignore_index)
                flat_labels = torch.where(attention_mask.reshape(-1) == 1, flat_labels, ignored)
            loss = loss_fct(logits.view(-1, self.config["num_labels"]), flat_labels)
        return TokenClassifierOutput(loss=loss, logits=logits, **passthrough(outputs))


class QuestionAnsweringHead(PredictionHead):
    """Extractive QA: start and end logits per token; labels are ``start_positions``/``end_positions``."""

    head_type = "question_answering"

    def __init__(self, model_config, name, num_labels=2, layers=1, activation_function="tanh", id2label=None,
                 dropout_prob=None, training=False):
        super().__init__(name)
        self.config = _token_config(self.head_type, num_labels, layers, activation_function, id2label, dropout_prob)
        self.build(model_config, training)

    def get_label_names(self) -> list[str]:
        return ["start_positions", "end_positions"]

    def forward(self, outputs, cls_output=None, attention_mask=None, labels=None,
                start_positions=None, end_positions=None, **kwargs):
        logits = super().forward(outputs[0])
        start_logits, end_logits = (t.squeeze(-1) for t in logits.split(1, dim=-1))
        loss = None
        if start_positions is not None and end_positions is not None:
            ignored = start_logits.size(1)
            start = start_positions.reshape(start_positions.shape[0]).clamp(0, ignored)
            end = end_positions.reshape(end_positions.shape[0]).clamp(0, ignored)
            loss_fct = CrossEntropyLoss(ignore_index=ignored)
            loss = (loss_fct(start_logits, start) + loss_fct(end_logits, end)) / 2
        return QuestionAnsweringModelOutput(
            loss=loss, start_logits=start_logits, end_logits=end_logits, **passthrough(outputs)
        )
