"""Prediction heads: classification, tagging, multiple choice, QA and language modelling.

``HeadsMixin`` is mixed into the adapter model; the head classes and the on-disk format follow
the ``adapters`` library 1.x (weight keys ``heads.<name>.<index>...``, ``head_config.json``).
"""

from .base import PredictionHead
from .dispatch import HEAD_KWARGS, last_token_output
from .errors import InvalidHead
from .lm import CausalLMHead, MaskedLMHead
from .mixin import HEAD_CLASSES, HeadsMixin, head_setup_for
from .outputs import MultiHeadOutput
from .types import (
    ClassificationHead,
    MultiLabelClassificationHead,
    MultipleChoiceHead,
    QuestionAnsweringHead,
    TaggingHead,
)

__all__ = [
    "HEAD_KWARGS",
    "HEAD_CLASSES",
    "CausalLMHead",
    "ClassificationHead",
    "HeadsMixin",
    "InvalidHead",
    "MaskedLMHead",
    "MultiHeadOutput",
    "MultiLabelClassificationHead",
    "MultipleChoiceHead",
    "PredictionHead",
    "QuestionAnsweringHead",
    "TaggingHead",
    "head_setup_for",
    "last_token_output",
]
