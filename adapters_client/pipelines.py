"""``adapters_client.pipeline(identifier_or_model)``: texts in, labels and scores out.

(The module is called ``pipelines`` so that importing it never hides the ``pipeline`` function.)
"""

from __future__ import annotations

from typing import Optional, Union

from .errors import IncompatibleAdapter, TokenizerUnavailable

_CLASSIFICATION = ("classification", "multilabel_classification")
_HUGE = 100_000  # tokenizers without a limit report a huge model_max_length


class TextClassificationPipeline:
    """A callable: ``pipe("text")`` -> ``{"label", "score"}``; ``pipe([...])`` -> one per text.

    ``top_k``: None gives every label with its score (sorted), an int the best ``top_k`` (a list when > 1).
    Scores are a softmax over the head's labels (a sigmoid per label for multi-label heads)."""

    def __init__(self, model, tokenizer, *, device=None, batch_size: int = 32, max_length: Optional[int] = None,
                 top_k: Optional[int] = 1, head: Optional[str] = None):
        import torch

        self.model, self.tokenizer = model, tokenizer
        if device is not None:
            self.model.to(torch.device(device))
        self.device = next(model.parameters()).device
        self.batch_size, self.top_k = max(1, int(batch_size)), top_k
        self.max_length = max_length or _max_length(model, tokenizer)
        self.head = head or _single_head(model)
        self.multilabel, self.labels = _head_labels(model, self.head)
        self.model.eval()

    def __call__(self, texts: Union[str, list], *, top_k="default", batch_size: Optional[int] = None):
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not all(isinstance(t, str) for t in items):
            raise TypeError("pipeline inputs must be strings (or a list of strings)")
        top_k = self.top_k if top_k == "default" else top_k
        scores = self.scores(items, batch_size=batch_size)
        results = [self._rank(row, top_k) for row in scores]
        return results[0] if single else results

    def scores(self, texts: list, batch_size: Optional[int] = None) -> list:
        """One list of label scores per text, in the input order."""
        import torch

        size = batch_size or self.batch_size
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # similar lengths: less padding
        out: list = [None] * len(texts)
        with torch.inference_mode():
            for start in range(0, len(order), size):
                chosen = order[start:start + size]
                batch = self.tokenizer([texts[i] for i in chosen], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt")
                batch = {k: v.to(self.device) for k, v in batch.items()}
                logits = self.model(**batch, head=self.head).logits.float()
                probs = torch.sigmoid(logits) if self.multilabel else torch.softmax(logits, dim=-1)
                for index, row in zip(chosen, probs.cpu().tolist()):
                    out[index] = row
        return out

    def _rank(self, row: list, top_k):
        ranked = sorted(({"label": self.labels[i], "score": s} for i, s in enumerate(row)),
                        key=lambda item: item["score"], reverse=True)
        if top_k is None:
            return ranked
        return ranked[0] if top_k == 1 else ranked[:top_k]


def _single_head(model) -> str:
    active = getattr(model, "active_head", None)
    if isinstance(active, str):
        return active
    heads = list(getattr(model, "heads", {}) or {})
    if len(heads) == 1:
        return heads[0]
    raise IncompatibleAdapter(f"pipeline needs one classification head; the model has {heads or 'none'} "
                              "(pass head=)", field="head")


def _head_labels(model, head: str) -> tuple[bool, list]:
    config = model.heads[head].config
    kind = config.get("head_type")
    if kind not in _CLASSIFICATION:
        raise IncompatibleAdapter(f"pipeline supports classification heads; {head!r} is a {kind} head",
                                  field="head")
    num_labels = int(config.get("num_labels") or 0)
    id2label = model.get_labels_dict(head) or {}
    labels = [str(id2label.get(i, f"LABEL_{i}")) for i in range(num_labels)]
    return kind == "multilabel_classification", labels


def _max_length(model, tokenizer) -> int:
    limits = [getattr(tokenizer, "model_max_length", None), getattr(model.config, "max_position_embeddings", None)]
    limits = [int(n) for n in limits if isinstance(n, int) and 0 < n < _HUGE]
    return min(limits) if limits else 512


def load_tokenizer(name_or_path: str, **kwargs):
    """The backbone's tokenizer; TokenizerUnavailable (with the cause) when it cannot be loaded."""
    from transformers import AutoTokenizer

    try:
        return AutoTokenizer.from_pretrained(name_or_path, **kwargs)
    except Exception as exc:  # transformers raises OSError, ValueError, HTTP errors...
        raise TokenizerUnavailable(
            f"cannot load the tokenizer of {name_or_path!r} ({type(exc).__name__}: {exc}); pass tokenizer= "
            "(a loaded tokenizer or its name)", model_name=name_or_path) from exc


def pipeline(identifier_or_model, *, tokenizer=None, device=None, batch_size: int = 32,
             max_length: Optional[int] = None, top_k: Optional[int] = 1, head: Optional[str] = None,
             model_name=None, config=None, version=None, hub=None, cache_dir=None, **from_pretrained_kwargs):
    """A text-classification callable from a hub identifier (loaded with ``adapters_client.load``) or a model.

    The tokenizer is ``AutoTokenizer.from_pretrained`` of the backbone (the resolution's ``model_name``, or
    the model's ``name_or_path``) unless ``tokenizer`` (an object or a name) is given. ``device``: "cpu",
    "cuda", ... (default: where the model is). Inputs are batched (``batch_size``) and truncated to the
    backbone's limit (``max_length``)."""
    if isinstance(identifier_or_model, str):
        from .api import load_with_resolution

        model, resolution = load_with_resolution(identifier_or_model, model_name=model_name, config=config,
                                                 version=version, hub=hub, cache_dir=cache_dir,
                                                 **from_pretrained_kwargs)
        source = resolution.get("model_name")
    else:
        model = identifier_or_model
        source = getattr(model.config, "_name_or_path", None) or getattr(model.config, "name_or_path", None)
    if tokenizer is None or isinstance(tokenizer, str):
        name = tokenizer or source
        if not name:
            raise TokenizerUnavailable("the model does not record its backbone's name: pass tokenizer=")
        from .hub import backbone_location

        tokenizer = load_tokenizer(backbone_location(name))
    return TextClassificationPipeline(model, tokenizer, device=device, batch_size=batch_size, max_length=max_length,
                                      top_k=top_k, head=head)
