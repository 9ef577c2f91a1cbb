"""Running heads over a batch that a composition block replicated (Parallel) or split (BatchSplit)."""

from __future__ import annotations

import torch
from transformers.utils import ModelOutput

from ..architectures import find_spec
from .errors import InvalidHead
from .outputs import MultiHeadOutput


def reads_last_token(model_type) -> bool:
    """True when sequence-level heads of ``model_type`` read the last non-padding token (the architecture
    row's ``last_token_heads``: decoder-only models); False for unsupported model types."""
    spec = find_spec(model_type)
    return spec is not None and spec.last_token_heads


# Keyword arguments of a model's forward that belong to the heads, not to the base model.
HEAD_KWARGS = frozenset({
    "start_positions", "end_positions", "cls_output", "pooled_output", "eos_mask", "prompt_tokens_length",
    "invertible_adapter",
})


def last_token_output(hidden: torch.Tensor, input_ids: torch.Tensor | None, pad_token_id: int | None):
    """Hidden state of each row's last token, as the adapters library and ``GPT2ForSequenceClassification`` pick it.

    With ``input_ids`` and a ``pad_token_id``: the position ``count(input_ids != pad_token_id) - 1`` (the
    library's rule; the attention mask is never looked at). Otherwise: the last position.
    """
    rows = torch.arange(hidden.shape[0], device=hidden.device)
    if pad_token_id is None or input_ids is None:
        return hidden[rows, -1]
    lengths = torch.ne(input_ids, pad_token_id).sum(-1) - 1
    if lengths.shape[0] != hidden.shape[0]:
        lengths = lengths.repeat(hidden.shape[0] // lengths.shape[0])
    return hidden[rows, lengths.to(hidden.device)]


def _slice(value, start: int, end: int):
    if torch.is_tensor(value):
        return value[start:end]
    if isinstance(value, tuple) and value and all(torch.is_tensor(v) for v in value):
        return tuple(v[start:end] for v in value)
    return None


def slice_outputs(outputs, start: int, end: int):
    """The base outputs restricted to rows ``start:end`` (non-batch values are dropped)."""
    if isinstance(outputs, ModelOutput):
        kept = {key: _slice(value, start, end) for key, value in outputs.items()}
        return outputs.__class__(**{k: v for k, v in kept.items() if v is not None})
    return tuple(_slice(value, start, end) for value in outputs)


def slice_argument(value, start: int, end: int, total: int, names: list[str], key: str):
    """A batch argument for one chunk: split if it spans the whole batch, kept if it is one chunk."""
    if not torch.is_tensor(value) or value.dim() == 0:
        return value
    if value.shape[0] == total:
        return value[start:end]
    if value.shape[0] == end - start:
        return value
    raise InvalidHead(
        f"Argument '{key}' has batch size {value.shape[0]}; expected {total} (whole batch) or {end - start} "
        f"(one branch) for heads {names}.",
    )


def run_split(model, outputs, names, sizes, cls_output, attention_mask, labels, kwargs) -> MultiHeadOutput:
    """Run head ``names[i]`` on the i-th chunk (``sizes[i]`` rows) of the batch."""
    total = outputs[0].shape[0]
    if sum(sizes) != total:
        raise InvalidHead(f"Batch of {total} rows cannot be split into {list(sizes)} for heads {list(names)}.")
    results, start = [], 0
    for name, size in zip(names, sizes):
        end = start + size
        args = {
            key: slice_argument(value, start, end, total, list(names), key)
            for key, value in dict(kwargs, cls_output=cls_output, attention_mask=attention_mask, labels=labels).items()
        }
        results.append(model._run_head(name, slice_outputs(outputs, start, end), **args))
        start = end
    losses = [out.get("loss") if isinstance(out, ModelOutput) else None for out in results]
    loss = torch.stack(losses).sum() if losses and all(x is not None for x in losses) else None
    return MultiHeadOutput(head_outputs=results, loss=loss)
