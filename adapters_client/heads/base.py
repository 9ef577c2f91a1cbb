"""The base prediction head: a numbered stack of layers whose indices give the weight keys.

Layer layout, key names and defaults follow the ``adapters`` library 1.x so that
``heads.<name>.<index>.weight`` checkpoints are interchangeable.
"""

from __future__ import annotations

import torch
from torch import nn
from transformers.activations import get_activation


class HeadActivation(nn.Module):
    """A named activation; the wrapped function lives under ``f`` (as in the library's weight keys)."""

    def __init__(self, name: str | None):
        super().__init__()
        if name is None:
            self.f = nn.Identity()
        elif name.lower() == "leakyrelu":
            self.f = nn.LeakyReLU()
        else:
            self.f = get_activation(name.lower())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.f(x)


def dropout_probability(head_config: dict, model_config) -> float:
    """The head's dropout: its own setting, else the model's classifier or hidden dropout, else 0."""
    for value in (
        head_config.get("dropout_prob"),
        getattr(model_config, "classifier_dropout", None),
        getattr(model_config, "hidden_dropout_prob", None),
    ):
        if value is not None:
            return value
    return 0.0


def init_head_weights(module: nn.Module, model_config) -> None:
    """Initialise like BERT/GPT-2: normal(0, initializer_range) linear weights, zero biases, unit norms."""
    std = getattr(model_config, "initializer_range", 0.02)
    for sub in module.modules():
        if isinstance(sub, nn.Linear):
            nn.init.normal_(sub.weight, mean=0.0, std=std)
            if sub.bias is not None:
                nn.init.zeros_(sub.bias)
        elif isinstance(sub, nn.LayerNorm):
            nn.init.ones_(sub.weight)
            nn.init.zeros_(sub.bias)


class PredictionHead(nn.Sequential):
    """A head: ``config`` (saved as head_config.json) plus numbered layers.

    Subclasses set ``self.config`` and call :meth:`build`; their ``forward`` takes the base
    model's outputs (``outputs[0]`` is the last hidden state) and returns a ``ModelOutput``.
    """

    head_type = ""

    def __init__(self, name: str):
        super().__init__()
        self.name = name
        self.config: dict = {}

    def build(self, model_config, training: bool = False) -> None:
        """Create the layers: per layer dropout then linear; hidden layers add the activation."""
        hidden = model_config.hidden_size
        n_layers = self.config["layers"]
        act = self.config.get("activation_function")
        p = dropout_probability(self.config, model_config)
        layers: list[nn.Module] = []
        for index in range(n_layers):
            layers.append(nn.Dropout(p))
            if index < n_layers - 1:
                layers.append(nn.Linear(hidden, hidden))
                if act:
                    layers.append(HeadActivation(act))
            else:
                layers.extend(self._final_layers(hidden, act))
        for index, layer in enumerate(layers):
            self.add_module(str(index), layer)
        init_head_weights(self, model_config)
        self.train(training)

    def _final_layers(self, hidden: int, act: str | None) -> list[nn.Module]:
        bias = self.config.get("bias", True)
        if "num_labels" in self.config:
            return [nn.Linear(hidden, self.config["num_labels"], bias=bias)]
        if "num_choices" in self.config:
            return [nn.Linear(hidden, 1, bias=bias)]
        final = [nn.Linear(hidden, hidden, bias=bias)]
        return final + ([HeadActivation(act)] if act else [])

    def get_output_embeddings(self) -> nn.Module | None:
        """The layer tied to the input embeddings (LM heads only)."""
        return None

    def get_label_names(self) -> list[str]:
        return ["labels"]

    def select_cls(self, outputs, cls_output=None, pooled_output=None) -> torch.Tensor:
        """The sequence representation: given, the pooler's output, or the first token."""
        if cls_output is not None:
            return cls_output
        if self.config.get("use_pooler"):
            if pooled_output is None:
                pooled_output = getattr(outputs, "pooler_output", None)
            if pooled_output is None:
                raise ValueError(f"Head '{self.name}' uses the pooler but the model returned no pooled output.")
            return pooled_output
        return outputs[0][:, 0]


def labels_map(id2label: dict | None) -> dict | None:
    """``label2id`` from an ``id2label`` mapping (keys become ints), or None."""
    if id2label is None:
        return None
    return {label: int(index) for index, label in id2label.items()}


def passthrough(outputs) -> dict:
    """The base outputs every head output carries along (hidden states, attentions)."""
    return {
        "hidden_states": getattr(outputs, "hidden_states", None),
        "attentions": getattr(outputs, "attentions", None),
    }
