"""What one validation job does with the database: claim the version, fetch its files, run the checks,
score it, record the verdict (CONTRACTS.md section 4). The checks themselves (pipeline.py) know no ORM.

``run_validation`` is what the Celery task calls; it is also used by ``manage.py versionstatus``.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from django.conf import settings

from registry.choices import VersionStatus
from registry.models import AdapterVersion
from registry.services import lifecycle
from registry.services.backbones import allow_list
from registry.storage import open_for_download

from .errors import NotScorable
from .pipeline import validate_folder
from .scoring import score_folder

log = logging.getLogger(__name__)

# a subtask's metric_name -> the scorer's metric
_METRICS = {"accuracy": "accuracy", "acc": "accuracy", "f1": "macro_f1", "macro_f1": "macro_f1",
            "macro-f1": "macro_f1", "f1_macro": "macro_f1"}


@dataclass
class Outcome:
    status: str
    report: dict
    error_code: str = ""
    verified_score: Optional[float] = None


def materialise(version: AdapterVersion, folder: Path) -> None:
    """Copy the version's files from the weights store into ``folder`` (the adapter folder layout)."""
    for item in version.files.all():
        with open_for_download(item.storage_key) as source, open(folder / item.name, "wb") as target:
            shutil.copyfileobj(source, target, 1024 * 1024)


def evaluate(version: AdapterVersion, folder: Path) -> tuple[Optional[float], dict]:
    """The verified score on the subtask's evaluation sample (None with the reason when it cannot be given)."""
    subtask = version.adapter.subtask
    samples = [(s["text"], s["label"]) for s in subtask.evaluation_sample or [] if isinstance(s, dict)
               and "text" in s and "label" in s]
    if not samples:
        return None, {"status": "no_sample", "detail": f"subtask {subtask.path} has no evaluation sample"}
    metric = _METRICS.get((subtask.metric_name or "accuracy").strip().lower(), "accuracy")
    try:
        result = score_folder(folder, version.adapter.model_name, samples, metric, allow_list=allow_list())
    except NotScorable as exc:
        return None, {"status": "not_scorable", "detail": exc.detail if hasattr(exc, "detail") else str(exc)}
    entry = {"status": "scored", "metric": result.metric, "value": result.value, "samples": result.samples,
             "source": subtask.evaluation_source}
    claimed = version.claimed_score
    if claimed is not None and claimed > result.value + settings.HUB_CLAIMED_SCORE_TOLERANCE:
        entry["claimed_above_verified"] = True
    return result.value, entry


def check_version(version: AdapterVersion) -> Outcome:
    """Run every check (and the scoring) on a stored version; PlatformFault propagates (ours: retried)."""
    workdir = Path(tempfile.mkdtemp(prefix=f"validate-{version.pk}-"))
    try:
        materialise(version, workdir)
        report = validate_folder(workdir, version.adapter.model_name, allow_list=allow_list())
        data = report.to_dict()
        if not report.valid:
            return Outcome(VersionStatus.REJECTED, data, report.codes[0] if report.codes else "rejected")
        score, entry = (None, {"status": "shape_only", "detail": "the backbone has random weights"}) \
            if report.shape_only else evaluate(version, workdir)
        data["score"] = entry
        return Outcome(VersionStatus.VALID, data, verified_score=score)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def run_validation(version_id: int, digest: str) -> Optional[Outcome]:
    """Claim, check and record one version; None when it was already final (a duplicate delivery).

    A ``PlatformFault`` leaves the version ``validating`` and propagates for the task to retry; the attempt
    cap of ``lifecycle.start_validation`` ends a version that keeps failing as ``error``.
    """
    version = lifecycle.start_validation(version_id, digest)
    if version is None:
        return None
    outcome = check_version(version)
    lifecycle.record_validation(version_id, digest, outcome.status, outcome.report,
                                error_code=outcome.error_code, verified_score=outcome.verified_score)
    log.info("version %s validated: %s %s", version_id, outcome.status, outcome.error_code)
    return outcome


def attempts_exhausted(version_id: int) -> bool:
    """True when the next delivery would pass the attempt cap (a retry would only end as worker_lost)."""
    attempts = AdapterVersion.objects.filter(pk=version_id).values_list("attempts", flat=True).first()
    return attempts is not None and attempts >= settings.HUB_VALIDATION_MAX_ATTEMPTS


def record_platform_error(version_id: int, digest: str, error: Exception, code: str) -> bool:
    """Final ``error`` status with the cause (retries exhausted, time limit): never the user's fault."""
    detail = getattr(error, "detail", "") or f"{type(error).__name__}: {error}"
    report = {"verdict": "error", "errors": [{"code": code, "detail": str(detail)}]}
    return lifecycle.record_validation(version_id, digest, VersionStatus.ERROR, report, error_code=code)


__all__ = ["run_validation", "check_version", "record_platform_error", "attempts_exhausted", "Outcome"]
