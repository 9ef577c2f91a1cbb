"""Language-modelling heads whose last layer can be tied to the input embeddings."""

from __future__ import annotations

from torch import nn
from transformers.modeling_outputs import (CausalLMOutput, CausalLMOutputWithCrossAttentions, MaskedLMOutput,
                                           Seq2SeqLMOutput)

from .base import HeadActivation, PredictionHead, init_head_weights, passthrough
from .types import prepend_ignored


class CausalLMHead(PredictionHead):
    """Next-token prediction: ``layers - 1`` transform blocks, then a projection to the vocabulary."""

    head_type = "causal_lm"

    def __init__(self, model_config, name, vocab_size=None, embedding_size=None, layers=1, activation_function=None,
                 layer_norm=False, bias=False, shift_labels=True, dropout_prob=None, training=False, **_ignored):
        super().__init__(name)
        self.config = self._lm_config(model_config, vocab_size, embedding_size, layers, activation_function,
                                      layer_norm, bias, shift_labels)
        self.config["dropout_prob"] = dropout_prob
        self.build(model_config, training)

    def _lm_config(self, model_config, vocab_size, embedding_size, layers, act, layer_norm, bias, shift_labels):
        default_embedding = getattr(model_config, "embedding_size", None) or model_config.hidden_size
        return {
            "head_type": self.head_type,
            "vocab_size": vocab_size or model_config.vocab_size,
            "embedding_size": embedding_size or default_embedding,
            "layers": layers,
            "activation_function": act,
            "layer_norm": layer_norm,
            "bias": bias,
            "shift_labels": shift_labels,
            "label2id": None,
        }

    def build(self, model_config, training: bool = False) -> None:
        """Transform blocks (linear, activation, layer norm) then the vocabulary projection."""
        embedding = self.config.get("embedding_size") or model_config.hidden_size
        act = self.config.get("activation_function")
        layers: list[nn.Module] = []
        for index in range(self.config["layers"] - 1):
            layers.append(nn.Linear(model_config.hidden_size if index == 0 else embedding, embedding))
            if act:
                layers.append(HeadActivation(act))
            if self.config.get("layer_norm"):
                layers.append(nn.LayerNorm(embedding, eps=getattr(model_config, "layer_norm_eps", 1e-12)))
        layers.append(nn.Linear(embedding, self.config["vocab_size"], bias=self.config["bias"]))
        for index, layer in enumerate(layers):
            self.add_module(str(index), layer)
        init_head_weights(self, model_config)
        self.train(training)

    def get_output_embeddings(self) -> nn.Module:
        return self[len(self) - 1]

    def output_key(self) -> str:
        """The key (inside the head) of the tied projection weight."""
        return f"{len(self) - 1}.weight"

    def _output(self, loss, logits, outputs):
        past = getattr(outputs, "past_key_values", None)
        cross = getattr(outputs, "cross_attentions", None)
        if past is None and cross is None:
            return CausalLMOutput(loss=loss, logits=logits, **passthrough(outputs))
        return CausalLMOutputWithCrossAttentions(
            loss=loss, logits=logits, past_key_values=past, cross_attentions=cross, **passthrough(outputs)
        )

    def forward(self, outputs, cls_output=None, attention_mask=None, labels=None, invertible_adapter=None, **kwargs):
        hidden = outputs[0]
        for index in range(len(self) - 1):
            hidden = self[index](hidden)
        if invertible_adapter is not None:
            hidden = invertible_adapter(hidden, rev=True)
        logits = self[len(self) - 1](hidden)
        loss = None
        if labels is not None:
            loss_fct = nn.CrossEntropyLoss()
            scored = logits
            if self.config["shift_labels"]:
                scored, labels = logits[..., :-1, :].contiguous(), labels[..., 1:].contiguous()
            labels, _ = prepend_ignored(labels, None, kwargs.get("prompt_tokens_length") or 0, loss_fct.ignore_index)
            loss = loss_fct(scored.reshape(-1, self.config["vocab_size"]), labels.reshape(-1))
        return self._output(loss, logits, outputs)


class MaskedLMHead(CausalLMHead):
    """BERT-style masked LM head (no label shift)."""

    head_type = "masked_lm"

    def __init__(self, model_config, name, vocab_size=None, embedding_size=None, layers=2, activation_function="gelu",
                 layer_norm=True, bias=True, shift_labels=False, training=False, **_ignored):
        PredictionHead.__init__(self, name)
        self.config = self._lm_config(model_config, vocab_size, embedding_size, layers, activation_function,
                                      layer_norm, bias, shift_labels)
        self.build(model_config, training)

    def _output(self, loss, logits, outputs):
        return MaskedLMOutput(loss=loss, logits=logits, **passthrough(outputs))


class Seq2SeqLMHead(CausalLMHead):
    """The decoder's next-token head of encoder-decoder models (the library's ``seq2seq_lm``: one tied projection
    by default, no label shift: ``labels`` are aligned with ``decoder_input_ids``)."""

    head_type = "seq2seq_lm"

    def __init__(self, model_config, name, vocab_size=None, layers=1, activation_function=None, layer_norm=False,
                 bias=False, shift_labels=False, training=False, **_ignored):
        PredictionHead.__init__(self, name)
        # the library's config keys (no embedding_size / dropout_prob: the hidden size is the embedding size)
        self.config = {
            "head_type": self.head_type,
            "vocab_size": vocab_size or model_config.vocab_size,
            "layers": layers,
            "activation_function": activation_function,
            "layer_norm": layer_norm,
            "bias": bias,
            "shift_labels": shift_labels,
            "label2id": None,
        }
        self.build(model_config, training)

    def _output(self, loss, logits, outputs):
        fields = ("past_key_values", "decoder_hidden_states", "decoder_attentions", "cross_attentions",
                  "encoder_last_hidden_state", "encoder_hidden_states", "encoder_attentions")
        return Seq2SeqLMOutput(loss=loss, logits=logits, **{k: getattr(outputs, k, None) for k in fields})
