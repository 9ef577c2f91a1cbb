"""What an encoder-decoder ``AdapterModel`` does around its base model, beyond the engine (BART, T5).

The architecture row says what applies: ``decoder_inputs_from`` (the base model's method that makes decoder inputs
when none are given, T5's ``_shift_right``) and ``tied_output_scale`` (T5: with tied embeddings the heads, and a
forward without head, see the decoder output times ``d_model ** -0.5``, as the library's T5AdapterModel gives it;
sequence heads read the unscaled output at the last <eos>).
"""

from __future__ import annotations

from .architectures import ArchSpec
from .hooks import target_missing


def _lm_head_in_use(model, head) -> bool:
    names = [head] if isinstance(head, str) else list(getattr(model, "_head_setup_names", lambda: [])())
    heads = getattr(model, "heads", {})
    return any(name in heads and heads[name].head_type == "seq2seq_lm" for name in names)


def fill_decoder_inputs(model, spec: ArchSpec, base_inputs: dict, labels, head) -> None:
    """``decoder_input_ids`` from a seq2seq LM head's ``labels`` or else from ``input_ids``, shifted right by the
    base model's ``spec.decoder_inputs_from`` method, when the caller gave no decoder inputs."""
    if spec.decoder_inputs_from is None:
        return
    if base_inputs.get("decoder_input_ids") is not None or base_inputs.get("decoder_inputs_embeds") is not None:
        return
    source = labels if labels is not None and _lm_head_in_use(model, head) else base_inputs.get("input_ids")
    if source is None:
        return  # the base model reports the missing decoder inputs itself
    shift = getattr(model.base_model, spec.decoder_inputs_from, None)
    if shift is None:
        raise target_missing(spec.model_type, spec.decoder_inputs_from,
                             "the base model has no method to make decoder inputs")
    base_inputs["decoder_input_ids"] = shift(source)


def scale_tied_output(model, spec: ArchSpec, outputs, head_kwargs: dict) -> None:
    """T5 with tied embeddings: ``last_hidden_state`` times d_model**-0.5; the unscaled output goes to the sequence
    heads (``eos_hidden``)."""
    if not spec.tied_output_scale or not getattr(model.config, "tie_word_embeddings", True):
        return
    hidden = outputs[0]
    head_kwargs["eos_hidden"] = hidden
    outputs["last_hidden_state"] = hidden * (getattr(model.config, spec.hidden_size_attr) ** -0.5)
