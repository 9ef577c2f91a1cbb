"""``adapters_client.pipeline(identifier_or_model)``: texts in, predictions out, by the head's type.

- ``classification`` / ``multilabel_classification`` heads: ``TextClassificationPipeline`` (labels and scores);
- ``tagging`` heads: ``TokenClassificationPipeline`` (one label and score per word piece);
- ``causal_lm`` / ``seq2seq_lm`` heads: ``TextGenerationPipeline`` (``model.generate``, greedy by default).

(The module is called ``pipelines`` so that importing it never hides the ``pipeline`` function.)
"""

from __future__ import annotations

from typing import Optional, Union

from .errors import IncompatibleAdapter, TokenizerUnavailable

_CLASSIFICATION = ("classification", "multilabel_classification")
_TAGGING = ("tagging",)
GENERATION_HEAD_TYPES = ("causal_lm", "seq2seq_lm")  # the heads generate() runs (generation.py reads this list)
SUPPORTED_HEAD_TYPES = _CLASSIFICATION + _TAGGING + GENERATION_HEAD_TYPES
_HUGE = 100_000  # tokenizers without a limit report a huge model_max_length
MAX_NEW_TOKENS = 40


class _Pipeline:
    """What every pipeline shares: the model (moved to ``device``, in eval mode), its tokenizer, the head it runs,
    the batch size and the input length limit."""

    head_types: tuple = ()

    def __init__(self, model, tokenizer, *, device=None, batch_size: int = 32, max_length: Optional[int] = None,
                 head: Optional[str] = None):
        import torch

        self.model, self.tokenizer = model, tokenizer
        if device is not None:
            self.model.to(torch.device(device))
        self.device = next(model.parameters()).device
        self.batch_size = max(1, int(batch_size))
        self.max_length = max_length or max_input_length(model, tokenizer)
        self.head = head or _single_head(model)
        self.head_type = head_type(model, self.head)
        if self.head_type not in self.head_types:
            raise IncompatibleAdapter(f"{type(self).__name__} supports {' and '.join(self.head_types)} heads; "
                                      f"{self.head!r} is a {self.head_type} head", field="head")
        self.model.eval()

    @staticmethod
    def _items(texts) -> tuple[bool, list]:
        single = isinstance(texts, str)
        items = [texts] if single else list(texts)
        if not all(isinstance(t, str) for t in items):
            raise TypeError("pipeline inputs must be strings (or a list of strings)")
        return single, items

    def _batches(self, texts: list, batch_size: Optional[int]):
        """Index lists of at most ``batch_size`` texts of similar lengths (less padding)."""
        size = max(1, int(batch_size or self.batch_size))
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), size):
            yield order[start:start + size]


class TextClassificationPipeline(_Pipeline):
    """A callable: ``pipe("text")`` -> ``{"label", "score"}``; ``pipe([...])`` -> one per text.

    ``top_k``: None gives every label with its score (sorted), an int the best ``top_k`` (a list when > 1).
    Scores are a softmax over the head's labels (a sigmoid per label for multi-label heads)."""

    head_types = _CLASSIFICATION

    def __init__(self, model, tokenizer, *, device=None, batch_size: int = 32, max_length: Optional[int] = None,
                 top_k: Optional[int] = 1, head: Optional[str] = None):
        super().__init__(model, tokenizer, device=device, batch_size=batch_size, max_length=max_length, head=head)
        self.top_k = top_k
        self.multilabel, self.labels = self.head_type == "multilabel_classification", _labels(model, self.head)

    def __call__(self, texts: Union[str, list], *, top_k="default", batch_size: Optional[int] = None):
        single, items = self._items(texts)
        top_k = self.top_k if top_k == "default" else top_k
        scores = self.scores(items, batch_size=batch_size)
        results = [self._rank(row, top_k) for row in scores]
        return results[0] if single else results

    def scores(self, texts: list, batch_size: Optional[int] = None) -> list:
        """One list of label scores per text, in the input order."""
        import torch

        out: list = [None] * len(texts)
        with torch.inference_mode():
            for chosen in self._batches(texts, batch_size):
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


class TokenClassificationPipeline(_Pipeline):
    """A callable for ``tagging`` heads: ``pipe("text")`` -> one dict per token, ``pipe([...])`` -> one list per text.

    Each token is a word piece as the tokenizer gives it (not grouped into words): ``token`` (the tokenizer's
    piece, e.g. ``"##ing"``), ``label`` (the best label), ``score`` (its softmax probability), ``index`` (its
    position in the tokenized input) and ``start``/``end`` (character offsets in the text; None with a tokenizer
    that cannot give offsets). Special tokens (``[CLS]``, ``[SEP]``, padding) are left out."""

    head_types = _TAGGING

    def __init__(self, model, tokenizer, *, device=None, batch_size: int = 32, max_length: Optional[int] = None,
                 head: Optional[str] = None):
        super().__init__(model, tokenizer, device=device, batch_size=batch_size, max_length=max_length, head=head)
        self.labels = _labels(model, self.head)

    def __call__(self, texts: Union[str, list], *, batch_size: Optional[int] = None):
        import torch

        single, items = self._items(texts)
        offsets_available = bool(getattr(self.tokenizer, "is_fast", False))
        out: list = [None] * len(items)
        with torch.inference_mode():
            for chosen in self._batches(items, batch_size):
                batch = self.tokenizer([items[i] for i in chosen], padding=True, truncation=True,
                                       max_length=self.max_length, return_tensors="pt",
                                       return_special_tokens_mask=True, return_offsets_mapping=offsets_available)
                special = batch.pop("special_tokens_mask")
                offsets = batch.pop("offset_mapping", None)
                inputs = {k: v.to(self.device) for k, v in batch.items()}
                probs = torch.softmax(self.model(**inputs, head=self.head).logits.float(), dim=-1).cpu()
                best = probs.max(dim=-1)
                for row, index in enumerate(chosen):
                    keep = (batch["attention_mask"][row].bool() & ~special[row].bool()).nonzero().flatten().tolist()
                    ids = batch["input_ids"][row].tolist()
                    pieces = self.tokenizer.convert_ids_to_tokens([ids[p] for p in keep])
                    out[index] = [{"token": piece, "label": self.labels[int(best.indices[row, p])],
                                   "score": float(best.values[row, p]), "index": p,
                                   "start": int(offsets[row, p, 0]) if offsets is not None else None,
                                   "end": int(offsets[row, p, 1]) if offsets is not None else None}
                                  for piece, p in zip(pieces, keep)]
        return out[0] if single else out


class TextGenerationPipeline(_Pipeline):
    """A callable for ``causal_lm`` / ``seq2seq_lm`` heads: ``pipe("text")`` -> ``{"generated_text": ...}``,
    ``pipe([...])`` -> one per text (a list of ``num_return_sequences`` dicts per text when that is > 1).

    Decoding is ``model.generate``: greedy unless ``do_sample`` / ``num_beams`` / other generate keywords say
    otherwise (given here as ``generate_kwargs`` or per call), at most ``max_new_tokens`` new tokens. Causal LMs:
    prompts are left-padded in a batch and cut to their last ``max_length - max_new_tokens`` tokens; the text
    returned is what follows the prompt (the prompt and it with ``return_full_text=True``). Encoder-decoders: the
    input is truncated to ``max_length`` and the text returned is the decoder's output. A tokenizer without a pad
    token pads with its eos token."""

    head_types = GENERATION_HEAD_TYPES

    def __init__(self, model, tokenizer, *, device=None, batch_size: int = 32, max_length: Optional[int] = None,
                 head: Optional[str] = None, max_new_tokens: int = MAX_NEW_TOKENS, return_full_text: bool = False,
                 generate_kwargs: Optional[dict] = None):
        super().__init__(model, tokenizer, device=device, batch_size=batch_size, max_length=max_length, head=head)
        self.max_new_tokens, self.return_full_text = int(max_new_tokens), bool(return_full_text)
        self.generate_kwargs = dict(generate_kwargs or {})
        self.encoder_decoder = self.head_type == "seq2seq_lm"
        pad = getattr(tokenizer, "pad_token_id", None)
        self.pad_token_id = pad if pad is not None else getattr(tokenizer, "eos_token_id", None)

    def __call__(self, texts: Union[str, list], *, batch_size: Optional[int] = None,
                 max_new_tokens: Optional[int] = None, return_full_text: Optional[bool] = None, **generate_kwargs):
        import torch

        single, items = self._items(texts)
        new_tokens = int(max_new_tokens if max_new_tokens is not None else self.max_new_tokens)
        full_text = self.return_full_text if return_full_text is None else bool(return_full_text)
        options = {"do_sample": False, "num_beams": 1, **self.generate_kwargs, **generate_kwargs,
                   "max_new_tokens": new_tokens, "head": self.head}
        if self.pad_token_id is not None:
            options.setdefault("pad_token_id", self.pad_token_id)
        copies = int(options.get("num_return_sequences") or 1)
        out: list = [None] * len(items)
        for chosen in self._batches(items, batch_size):
            prompts = self._encode([items[i] for i in chosen], new_tokens)
            input_ids, attention_mask = self._pad(prompts)
            with torch.inference_mode():
                generated = self.model.generate(input_ids=input_ids, attention_mask=attention_mask, **options)
            rows = generated.cpu().tolist()
            for position, index in enumerate(chosen):
                texts_out = [self._text(items[index], prompts[position], rows[position * copies + k],
                                        input_ids.shape[1], full_text) for k in range(copies)]
                out[index] = texts_out[0] if copies == 1 else texts_out
        return out[0] if single else out

    def _encode(self, texts: list, new_tokens: int) -> list:
        """Token ids per text: encoder inputs truncated at ``max_length``; causal prompts keep their last tokens so
        that prompt and new tokens fit in ``max_length``."""
        if self.encoder_decoder:
            prompts = self.tokenizer(texts, truncation=True, max_length=self.max_length)["input_ids"]
        else:
            room = max(1, self.max_length - new_tokens)
            prompts = [ids[-room:] for ids in self.tokenizer(texts)["input_ids"]]
        start = getattr(self.tokenizer, "bos_token_id", None)
        start = start if start is not None else getattr(self.tokenizer, "eos_token_id", None)
        if any(not ids for ids in prompts) and start is None:
            raise ValueError("an empty input needs a tokenizer with a bos or eos token to start from")
        return [ids or [start] for ids in prompts]  # an empty text (no tokens) starts from that token

    def _pad(self, prompts: list):
        """Input ids and attention mask: padded on the left for causal LMs (decoding continues at the right end),
        on the right for encoders."""
        import torch

        width = max(len(ids) for ids in prompts)
        pad = self.pad_token_id if self.pad_token_id is not None else 0
        ids, mask = [], []
        for prompt in prompts:
            fill = width - len(prompt)
            if self.encoder_decoder:
                ids.append(prompt + [pad] * fill)
                mask.append([1] * len(prompt) + [0] * fill)
            else:
                ids.append([pad] * fill + prompt)
                mask.append([0] * fill + [1] * len(prompt))
        return (torch.tensor(ids, dtype=torch.long, device=self.device),
                torch.tensor(mask, dtype=torch.long, device=self.device))

    def _text(self, text: str, prompt: list, row: list, width: int, full_text: bool) -> dict:
        decode = lambda ids: self.tokenizer.decode(ids, skip_special_tokens=True)  # noqa: E731
        if self.encoder_decoder:
            return {"generated_text": decode(row)}
        # as transformers' pipeline: decode prompt + continuation and cut the decoded prompt's characters, so that
        # the continuation keeps the spacing the tokenizer gives it after the prompt
        whole = decode(prompt + row[width:])
        continuation = whole[len(decode(prompt)):]
        return {"generated_text": text + continuation if full_text else continuation}


def head_type(model, head: str) -> Optional[str]:
    heads = getattr(model, "heads", {}) or {}
    if head not in heads:
        raise IncompatibleAdapter(f"the model has no head {head!r} (heads: {sorted(heads) or 'none'})", field="head")
    return heads[head].config.get("head_type")


def _single_head(model) -> str:
    active = getattr(model, "active_head", None)
    if isinstance(active, str):
        return active
    heads = list(getattr(model, "heads", {}) or {})
    if len(heads) == 1:
        return heads[0]
    raise IncompatibleAdapter(f"pipeline needs one prediction head; the model has {heads or 'none'} (pass head=)",
                              field="head")


def _labels(model, head: str) -> list:
    num_labels = int(model.heads[head].config.get("num_labels") or 0)
    id2label = model.get_labels_dict(head) or {}
    return [str(id2label.get(i, f"LABEL_{i}")) for i in range(num_labels)]


def max_input_length(model, tokenizer) -> int:
    """The longest input the model and tokenizer take (the smaller of their limits; 512 when neither has one)."""
    limits = [getattr(tokenizer, "model_max_length", None), getattr(model.config, "max_position_embeddings", None)]
    limits = [int(n) for n in limits if isinstance(n, int) and 0 < n < _HUGE]
    return min(limits) if limits else 512


def pipeline_for_head(model, tokenizer, *, head: Optional[str] = None, device=None, batch_size: int = 32,
                      max_length: Optional[int] = None, top_k: Optional[int] = 1,
                      max_new_tokens: int = MAX_NEW_TOKENS, return_full_text: bool = False,
                      generate_kwargs: Optional[dict] = None) -> _Pipeline:
    """The pipeline for the head's type (a loaded model and tokenizer); ``IncompatibleAdapter`` (field ``head``)
    for a head type no pipeline runs."""
    head = head or _single_head(model)
    kind = _supported_head_type(model, head)
    common = dict(device=device, batch_size=batch_size, max_length=max_length, head=head)
    if kind in _CLASSIFICATION:
        return TextClassificationPipeline(model, tokenizer, top_k=top_k, **common)
    if kind in _TAGGING:
        return TokenClassificationPipeline(model, tokenizer, **common)
    return TextGenerationPipeline(model, tokenizer, max_new_tokens=max_new_tokens, return_full_text=return_full_text,
                                  generate_kwargs=generate_kwargs, **common)


def _supported_head_type(model, head: str) -> str:
    kind = head_type(model, head)
    if kind not in SUPPORTED_HEAD_TYPES:
        raise IncompatibleAdapter(f"no pipeline runs a {kind} head ({head!r}); pipelines run "
                                  f"{', '.join(SUPPORTED_HEAD_TYPES)} heads (call the model directly)", field="head")
    return kind


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
             max_new_tokens: int = MAX_NEW_TOKENS, return_full_text: bool = False,
             generate_kwargs: Optional[dict] = None, model_name=None, config=None, version=None, hub=None,
             cache_dir=None, **from_pretrained_kwargs):
    """A callable from a hub identifier (loaded with ``adapters_client.load``) or a model, chosen by the head's
    type: ``TextClassificationPipeline``, ``TokenClassificationPipeline`` or ``TextGenerationPipeline``.

    The tokenizer is ``AutoTokenizer.from_pretrained`` of the backbone (the resolution's ``model_name``, or
    the model's ``name_or_path``) unless ``tokenizer`` (an object or a name) is given. ``device``: "cpu",
    "cuda", ... (default: where the model is). Inputs are batched (``batch_size``) and truncated to the
    backbone's limit (``max_length``). ``top_k``: classification only; ``max_new_tokens``, ``return_full_text``
    and ``generate_kwargs`` (e.g. ``{"do_sample": True}``): LM heads only. Other head types:
    ``IncompatibleAdapter`` (field ``head``)."""
    if isinstance(identifier_or_model, str):
        from .api import load_with_resolution

        model, resolution = load_with_resolution(identifier_or_model, model_name=model_name, config=config,
                                                 version=version, hub=hub, cache_dir=cache_dir,
                                                 **from_pretrained_kwargs)
        source = resolution.get("model_name")
    else:
        model = identifier_or_model
        source = getattr(model.config, "_name_or_path", None) or getattr(model.config, "name_or_path", None)
    head = head or _single_head(model)
    _supported_head_type(model, head)  # refused before a tokenizer is loaded
    if tokenizer is None or isinstance(tokenizer, str):
        name = tokenizer or source
        if not name:
            raise TokenizerUnavailable("the model does not record its backbone's name: pass tokenizer=")
        from .hub import backbone_location

        tokenizer = load_tokenizer(backbone_location(name))
    return pipeline_for_head(model, tokenizer, head=head, device=device, batch_size=batch_size,
                             max_length=max_length, top_k=top_k, max_new_tokens=max_new_tokens,
                             return_full_text=return_full_text, generate_kwargs=generate_kwargs)
