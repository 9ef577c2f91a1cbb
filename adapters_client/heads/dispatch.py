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


def refuses_head(model_type, head_type: str) -> bool:
    """True when the architecture row lists ``head_type`` in ``refused_heads`` (the library does not offer it)."""
    spec = find_spec(model_type)
    return spec is not None and head_type in spec.refused_heads


def is_encoder_decoder(model_type) -> bool:
    """True when the architecture row has a decoder layer list (BART): seq2seq heads, <eos> sequence tokens."""
    spec = find_spec(model_type)
    return spec is not None and spec.encoder_decoder


def eos_token_output(hidden: torch.Tensor, input_ids, eos_mask, eos_token_id) -> torch.Tensor:
    """The sequence representation of encoder-decoder models, as the library's ``get_cls_from_eos_tokens``: the
    (decoder) hidden state at the last position where ``eos_mask`` (default ``input_ids == eos_token_id``) is set;
    every row needs the same number of <eos> tokens."""
    if eos_mask is None:
        if input_ids is None or eos_token_id is None:
            raise InvalidHead("Sequence heads of encoder-decoder models read the last <eos> token: pass input_ids "
                              "(and set eos_token_id in the config) or eos_mask.")
        eos_mask = input_ids.eq(eos_token_id)
    if eos_mask.shape[0] != hidden.shape[0] and hidden.shape[0] % eos_mask.shape[0] == 0:
        eos_mask = eos_mask.repeat(hidden.shape[0] // eos_mask.shape[0], 1)  # Parallel replicated the batch
    if eos_mask.shape != hidden.shape[:2]:
        raise InvalidHead(f"eos_mask has shape {tuple(eos_mask.shape)} but the decoder output has "
                          f"{tuple(hidden.shape[:2])} positions; pass decoder inputs as long as the input_ids.")
    counts = eos_mask.sum(1)
    if counts.numel() and (counts.min() != counts.max() or int(counts[0]) == 0):
        raise InvalidHead("All examples must have the same number (at least one) of <eos> tokens.",
                          eos_counts=counts.tolist())
    eos_mask = eos_mask.to(hidden.device)
    return hidden[eos_mask, :].view(hidden.shape[0], -1, hidden.shape[-1])[:, -1, :]


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


# ---- mixed-adapter batches (``adapter_names``): one head per row --------------------------------------------
def _take(value, index: torch.Tensor, total: int):
    """``value``'s rows ``index`` when its first dimension is the batch; None for anything else."""
    if torch.is_tensor(value):
        return value.index_select(0, index.to(value.device)) if value.dim() and value.shape[0] == total else None
    if isinstance(value, tuple) and value and all(torch.is_tensor(v) for v in value):
        taken = tuple(_take(v, index, total) for v in value)
        return taken if all(t is not None for t in taken) else None
    return None


# the key/value cache of a base output ("cache" from transformers 5.24, "past_key_values" before): one object for the
# whole batch, which a head only hands on; a mixed-adapter batch keeps it whole
_CACHE_KEYS = ("past_key_values", "cache")


def take_outputs(outputs, index: torch.Tensor, total: int):
    """The base outputs restricted to rows ``index`` (values without a batch dimension are dropped; the key/value
    cache is kept whole)."""
    if isinstance(outputs, ModelOutput):
        kept = {key: (value if key in _CACHE_KEYS else _take(value, index, total)) for key, value in outputs.items()}
        return outputs.__class__(**{k: v for k, v in kept.items() if v is not None})
    return tuple(_take(value, index, total) for value in outputs)


def _scatter(parts: list, total: int, key: str, names: list):
    """One batch value from each group's (index, value): rows put back in their places."""
    first = parts[0][1]
    if first is None:
        if any(value is not None for _, value in parts):
            raise InvalidHead(f"The heads {names} do not all return '{key}'.")
        return None
    if isinstance(first, tuple):
        if any(not isinstance(v, tuple) or len(v) != len(first) for _, v in parts):
            raise InvalidHead(f"The heads {names} return '{key}' in different forms.")
        return tuple(_scatter([(i, v[n]) for i, v in parts], total, key, names) for n in range(len(first)))
    if not torch.is_tensor(first) or any(not torch.is_tensor(v) for _, v in parts):
        raise InvalidHead(f"The heads' '{key}' cannot be assembled per row.")
    shapes = {tuple(v.shape[1:]) for _, v in parts}
    if len(shapes) > 1:
        raise InvalidHead(f"The heads {names} give '{key}' of different shapes {sorted(shapes)}; a mixed-adapter "
                          f"batch needs heads with one output shape.", shapes=[list(s) for s in sorted(shapes)])
    result = first.new_empty((total, *first.shape[1:]))
    for index, value in parts:
        result.index_copy_(0, index.to(result.device), value)
    return result


def run_rows(model, outputs, row_heads: list, cls_output, attention_mask, kwargs) -> ModelOutput:
    """Head ``row_heads[i]`` on row ``i`` of the batch: rows grouped by head, each group's head run once on
    its rows, the outputs put back in row order (every head must give the same output type and shapes)."""
    total = len(row_heads)
    groups: dict = {}
    for row, name in enumerate(row_heads):
        groups.setdefault(name, []).append(row)
    names = list(groups)
    device = outputs[0].device
    parts = []
    for name, rows in groups.items():
        index = torch.tensor(rows, dtype=torch.long, device=device)
        args = {key: (_take(value, index, total) if torch.is_tensor(value) and value.dim() and
                      value.shape[0] == total else value)
                for key, value in dict(kwargs, cls_output=cls_output, attention_mask=attention_mask).items()}
        parts.append((index, model._run_head(name, take_outputs(outputs, index, total), **args)))
    kinds = {type(out) for _, out in parts}
    if len(kinds) > 1 or not isinstance(parts[0][1], ModelOutput):
        raise InvalidHead(f"The heads {names} return different outputs ({sorted(k.__name__ for k in kinds)}); a "
                          f"mixed-adapter batch needs heads of one kind.")
    keys = list(dict.fromkeys(key for _, out in parts for key in out.keys()))
    assembled = {key: _scatter([(i, out.get(key)) for i, out in parts], total, key, names)
                 for key in keys if key not in _CACHE_KEYS}
    result = {k: v for k, v in assembled.items() if v is not None}
    for key in _CACHE_KEYS:  # the key/value cache covers the whole batch: every group's head handed it on whole
        if key in keys and isinstance(outputs, ModelOutput) and outputs.get(key) is not None:
            result[key] = outputs[key]
    return parts[0][1].__class__(**result)
