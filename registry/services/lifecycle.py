"""The version lifecycle of CONTRACTS.md section 4, and the sweepers that keep it moving.

pending -> validating -> valid | rejected | error. Every transition is a conditional UPDATE, so
two workers (or a worker and a sweeper) can never both move the same version.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from celery import current_app
from django.conf import settings
from django.db import transaction
from django.utils import timezone

from ..choices import FINAL_STATUSES, VALIDATE_VERSION_TASK, VersionStatus
from ..models import AdapterVersion

log = logging.getLogger(__name__)


def enqueue_validation(version: AdapterVersion) -> bool:
    """Send the validation task by name. A broker outage is logged, not raised: the version
    stays pending and the stale-version sweeper sends it again later."""
    try:
        current_app.send_task(VALIDATE_VERSION_TASK, args=[version.pk, version.digest], retry=False)
    except Exception as exc:  # noqa: BLE001 - kombu raises many types for an unreachable broker
        log.warning("could not enqueue validation of version %s (will be swept): %s", version.pk, exc)
        return False
    return True


def enqueue_on_commit(version: AdapterVersion) -> None:
    transaction.on_commit(lambda: enqueue_validation(version))


def start_validation(version_id: int, digest: str) -> AdapterVersion | None:
    """Claim a version for a validation attempt; None when it is already final or unknown.

    Counts the attempt; past HUB_VALIDATION_MAX_ATTEMPTS the version ends as
    ``error: worker_lost`` (a poison job stops instead of looping)."""
    now = timezone.now()
    with transaction.atomic():
        version = (
            AdapterVersion.objects.select_for_update().filter(pk=version_id, digest=digest).first()
        )
        if version is None or version.status in FINAL_STATUSES:
            return None
        if version.attempts >= settings.HUB_VALIDATION_MAX_ATTEMPTS:
            _finish(version, VersionStatus.ERROR, {"errors": [{"code": "worker_lost", "detail": (
                f"validation did not finish after {version.attempts} attempts")}]}, "worker_lost", now)
            return None
        version.status = VersionStatus.VALIDATING
        version.attempts += 1
        version.status_changed_at = now
        version.save(update_fields=["status", "attempts", "status_changed_at", "updated_at"])
    return version


def record_validation(version_id: int, digest: str, status: str, report: dict, *,
                      error_code: str = "", verified_score: float | None = None) -> bool:
    """Store the final result of a validation; False when the version was already final."""
    if status not in FINAL_STATUSES:
        raise ValueError(f"not a final status: {status!r}")
    with transaction.atomic():
        version = AdapterVersion.objects.select_for_update().filter(pk=version_id, digest=digest).first()
        if version is None or version.status in FINAL_STATUSES:
            return False
        _finish(version, status, report, error_code, timezone.now(), verified_score)
    return True


def _finish(version, status, report, error_code, now, verified_score=None):
    version.status = status
    version.validation_report = report
    version.error_code = error_code
    version.verified_score = verified_score
    version.status_changed_at = now
    version.validated_at = now
    version.save(update_fields=[
        "status", "validation_report", "error_code", "verified_score", "status_changed_at", "validated_at",
        "updated_at",
    ])


def set_status(version: AdapterVersion, status: str, report: dict | None = None) -> AdapterVersion:
    """Administrative override (the ``versionstatus`` command, the admin)."""
    version.status = status
    version.status_changed_at = timezone.now()
    if status in FINAL_STATUSES:
        version.validated_at = version.status_changed_at
    if report is not None:
        version.validation_report = report
    version.save()
    return version


def sweep_stale_versions(now=None) -> int:
    """Re-enqueue versions stuck in pending/validating (lost task, Redis restart, broker down
    during upload). Returns how many were sent again."""
    now = now or timezone.now()
    cutoff = now - timedelta(seconds=settings.HUB_STALE_AFTER_SECONDS)
    stale = AdapterVersion.objects.filter(
        status__in=[VersionStatus.PENDING, VersionStatus.VALIDATING], status_changed_at__lt=cutoff
    )
    sent = 0
    for version in stale.iterator():
        # Touch it so that the next sweep waits a full period before trying again.
        AdapterVersion.objects.filter(pk=version.pk, status=version.status).update(status_changed_at=now)
        sent += enqueue_validation(version)
    return sent
