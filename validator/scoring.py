"""The verified score: a classification head run on an evaluation sample of text/label pairs.

``score`` is pure with respect to the model (eval mode, no gradients, nothing changed); the metrics
are plain functions of predicted and gold label ids.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Optional

from .errors import LoadFailed, NotScorable, UsageError

METRICS = ("accuracy", "macro_f1")
CLASSIFICATION_HEADS = ("classification",)


@dataclass(frozen=True)
class Score:
    metric: str
    value: float
    samples: int


def accuracy(predicted: Sequence[int], gold: Sequence[int]) -> float:
    _same_length(predicted, gold)
    return sum(int(p == g) for p, g in zip(predicted, gold)) / len(gold)


def macro_f1(predicted: Sequence[int], gold: Sequence[int], labels: Optional[Sequence[int]] = None) -> float:
    """Unweighted mean of the per-label F1 over ``labels`` (default: every label seen in either list)."""
    _same_length(predicted, gold)
    labels = sorted(set(labels) if labels is not None else set(predicted) | set(gold))
    scores = []
    for label in labels:
        tp = sum(1 for p, g in zip(predicted, gold) if p == label and g == label)
        fp = sum(1 for p, g in zip(predicted, gold) if p == label and g != label)
        fn = sum(1 for p, g in zip(predicted, gold) if p != label and g == label)
        scores.append(2 * tp / (2 * tp + fp + fn) if tp else 0.0)
    return sum(scores) / len(scores)


def _same_length(predicted, gold) -> None:
    if len(predicted) != len(gold) or not gold:
        raise UsageError(f"need as many predictions as gold labels, at least one ({len(predicted)} vs {len(gold)})")


def _label_ids(head_config: dict, labels: list) -> list:
    """Gold labels as ids: names through the head's label2id, or integers already."""
    label2id = head_config.get("label2id") or {}
    ids = []
    for label in labels:
        if isinstance(label, bool) or not isinstance(label, (int, str)):
            raise UsageError(f"a label must be a name or an integer id, got {label!r}")
        if isinstance(label, str):
            if label not in label2id:
                raise NotScorable(f"label {label!r} is not one of the head's labels {sorted(label2id)}")
            label = label2id[label]
        if not 0 <= label < head_config["num_labels"]:
            raise NotScorable(f"label id {label} is outside the head's {head_config['num_labels']} labels")
        ids.append(int(label))
    return ids


def predict(model, tokenizer, texts: list, head: str, batch_size: int = 16, max_length: int = 128) -> list:
    """The argmax of the head's logits for each text."""
    import torch

    predictions = []
    was_training = model.training
    model.eval()
    try:
        device = next(model.parameters()).device
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(list(texts[start:start + batch_size]), padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask",
                                                                         "token_type_ids")}
            with torch.no_grad():
                logits = model(**inputs, head=head).logits
            predictions += logits.argmax(dim=-1).tolist()
    finally:
        model.train(was_training)
    return predictions


def score(model, samples: Sequence, metric: str, *, tokenizer, head: Optional[str] = None,
          batch_size: int = 16) -> Score:
    """``metric`` (accuracy or macro_f1) of ``head`` (default: the active head) on (text, label) ``samples``."""
    if metric not in METRICS:
        raise UsageError(f"unknown metric {metric!r}; known: {list(METRICS)}")
    if tokenizer is None:
        raise NotScorable("scoring needs the backbone's tokenizer")
    head = head or getattr(model, "active_head", None)
    if not isinstance(head, str) or head not in model.heads:
        raise NotScorable(f"no single classification head to score (head {head!r})")
    head_config = model.heads[head].config
    if head_config.get("head_type") not in CLASSIFICATION_HEADS or head_config.get("num_labels", 0) < 2:
        raise NotScorable(f"head {head!r} is not a classification head with two or more labels")
    samples = list(samples)
    if not samples or not all(isinstance(s, (tuple, list)) and len(s) == 2 for s in samples):
        raise UsageError("samples must be a non-empty list of (text, label) pairs")
    texts = [str(text) for text, _ in samples]
    gold = _label_ids(head_config, [label for _, label in samples])
    predicted = predict(model, tokenizer, texts, head, batch_size)
    if metric == "accuracy":
        value = accuracy(predicted, gold)
    else:
        value = macro_f1(predicted, gold)
    return Score(metric=metric, value=value, samples=len(samples))


def score_folder(path, backbone: str, samples: Sequence, metric: str, *, allow_list=None, cache=None,
                 allow_local_paths: bool = False, batch_size: int = 16) -> Score:
    """Load the adapter folder and its head onto the cached ``backbone`` and ``score`` it; the backbone is left
    clean. Call it for a version that validated; ``NotScorable`` when it cannot be scored."""
    from .backbones import resolve_backbone
    from .loading import default_cache
    from .model_checks import label_maps, restore

    source = resolve_backbone(backbone, allow_list, allow_local_paths)
    if source.shape_only:
        raise NotScorable(f"backbone {backbone!r} is shape-only (random weights): a score would mean nothing")
    loaded, _ = (cache if cache is not None else default_cache()).get(source)
    with loaded.lock:
        model, before, head = loaded.model, label_maps(loaded.model), None
        try:
            try:
                model.load_adapter(str(path), with_head=False, set_active=True)
                head = model.load_head(str(path))
            except Exception as exc:  # noqa: BLE001 - as in the load check: the adapter's fault
                raise LoadFailed(f"adapters_client could not load the adapter: {type(exc).__name__}: {exc}") from None
            if head is None:
                raise NotScorable("the adapter has no head")
            return score(model, samples, metric, tokenizer=loaded.tokenizer, head=head, batch_size=batch_size)
        finally:
            restore(model, head, before)
