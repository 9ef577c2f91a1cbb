"""The web page's "try it" box: one short text through a valid adapter, run by a worker (never the web process).

The adapter's files are fetched from the weights store into a per-worker folder keyed by the version's
digest, the backbone comes from the worker's backbone cache, and the model is left clean afterwards.
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from registry.choices import VersionStatus
from registry.models import AdapterVersion
from registry.services.backbones import allow_list

from .backbones import resolve_backbone
from .errors import UsageError
from .jobs import materialise
from .loading import default_cache
from .model_checks import label_maps, restore

MAX_TEXT_CHARS = 2000
MAX_INPUT_TOKENS = 128  # at most this many tokens of the text are read (prompt and continuation, for LMs)
MAX_NEW_TOKENS = 40  # LM heads: the continuation's length
MAX_GENERATION_SECONDS = 10.0  # ... and its time (the web page waits HUB_TRY_TIMEOUT, 20 s by default)
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
    """{"labels": [{"label", "score"}, ...]} (classification, best first), {"tokens": [...]} (tagging) or
    {"generated_text": "..."} (causal / seq2seq LM heads); UsageError for a head type the box cannot run."""
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
    """The head's answer through the client's pipeline for its type (the rules live in adapters_client.pipelines):
    labels with scores, tokens with labels, or a short greedy continuation bounded in tokens and time."""
    from adapters_client.errors import IncompatibleAdapter
    from adapters_client.pipelines import (TextGenerationPipeline, TokenClassificationPipeline, max_input_length,
                                           pipeline_for_head)

    limit = min(MAX_INPUT_TOKENS, max_input_length(model, tokenizer))
    try:
        pipe = pipeline_for_head(model, tokenizer, head=head, max_length=limit, top_k=None,
                                 max_new_tokens=MAX_NEW_TOKENS, generate_kwargs={"max_time": MAX_GENERATION_SECONDS})
    except IncompatibleAdapter as exc:
        raise UsageError(f"the try-it box cannot run this adapter's head: {exc}") from None
    if isinstance(pipe, TextGenerationPipeline):
        return {"generated_text": pipe(text)["generated_text"]}
    if isinstance(pipe, TokenClassificationPipeline):
        return {"tokens": [{"token": t["token"], "label": t["label"], "score": round(t["score"], 4)}
                           for t in pipe(text)]}
    return {"labels": [{"label": r["label"], "score": round(r["score"], 4)} for r in pipe(text)]}
