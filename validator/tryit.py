"""The web page's "try it" box: one short text through a valid adapter, run by a worker (never the web process).

The adapter's files are fetched from the weights store into a per-worker folder keyed by the version's
digest, the backbone comes from the worker's backbone cache, and the model is left clean afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import torch

from registry.choices import VersionStatus
from registry.models import AdapterVersion
from registry.services.backbones import allow_list

from .backbones import resolve_backbone
from .errors import UsageError
from .jobs import materialise
from .loading import default_cache
from .model_checks import label_maps, restore

MAX_TEXT_CHARS = 2000
_FOLDERS = Path(tempfile.gettempdir()) / "adapterhub-tryit"


def _folder(version: AdapterVersion) -> Path:
    folder = _FOLDERS / version.digest
    if not folder.is_dir():
        _FOLDERS.mkdir(parents=True, exist_ok=True)
        staging = Path(tempfile.mkdtemp(prefix="staging-", dir=_FOLDERS))
        materialise(version, staging)
        try:
            staging.rename(folder)
        except OSError:  # another try-it run put it there first
            shutil.rmtree(staging, ignore_errors=True)
    return folder


def run_try(version_id: int, text: str) -> dict:
    """{"labels": [{"label", "score"}, ...]} (classification, best first) or {"tokens": [...]} (tagging)."""
    text = str(text)[:MAX_TEXT_CHARS]
    version = AdapterVersion.objects.select_related("adapter").filter(pk=version_id).first()
    if version is None or version.status != VersionStatus.VALID:
        raise UsageError(f"version {version_id} is not a valid adapter version")
    source = resolve_backbone(version.adapter.model_name, allow_list())
    loaded, _ = default_cache().get(source)
    if loaded.tokenizer is None:
        raise UsageError("the backbone has no tokenizer: try-it needs one")
    folder = _folder(version)
    with loaded.lock:
        model, before, head = loaded.model, label_maps(loaded.model), None
        try:
            model.load_adapter(str(folder), with_head=False, set_active=True)
            head = model.load_head(str(folder))
            if head is None:
                raise UsageError("the adapter has no prediction head")
            return _predict(model, loaded.tokenizer, text, head)
        finally:
            restore(model, head, before)


def _predict(model, tokenizer, text: str, head: str) -> dict:
    head_config = model.heads[head].config
    id2label = {index: label for label, index in (head_config.get("label2id") or {}).items()}
    batch = tokenizer([text], truncation=True, max_length=128, return_tensors="pt")
    device = next(model.parameters()).device
    inputs = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    model.eval()
    with torch.no_grad():
        logits = model(**inputs, head=head).logits[0].float()
    probs = logits.softmax(-1)
    if head_config.get("head_type") == "tagging":
        tokens = tokenizer.convert_ids_to_tokens(inputs["input_ids"][0].tolist())
        best = probs.max(-1)
        return {"tokens": [{"token": tok, "label": id2label.get(int(i), str(int(i))), "score": round(float(p), 4)}
                           for tok, i, p in zip(tokens, best.indices, best.values)]}
    order = probs.argsort(descending=True).tolist()
    return {"labels": [{"label": id2label.get(i, str(i)), "score": round(float(probs[i]), 4)} for i in order]}
