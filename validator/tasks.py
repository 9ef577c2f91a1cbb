"""Celery tasks of the validation workers: thin wrappers that take ids and call validator.jobs.

Delivery guarantees (RELIABILITY.md): late acknowledgement and reject-on-worker-lost (settings), so a
killed worker's job is delivered again; attempts are counted in the database (a job that kills its worker
every time ends ``error: worker_lost``); platform faults are retried with exponential backoff, then end as
``error``; the soft time limit ends a run as ``error: timeout`` before the hard limit and the broker's
visibility timeout, so no second run starts while one is still going.
"""

from __future__ import annotations

from celery import shared_task
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import task_failure
from django.conf import settings

from registry.choices import TRY_ADAPTER_TASK, VALIDATE_VERSION_TASK

from . import jobs
from .errors import PlatformFault

PING_TASK = "validator.ping"


@shared_task(name=VALIDATE_VERSION_TASK, bind=True, acks_late=True, reject_on_worker_lost=True,
             max_retries=None)
def validate_version(self, version_id: int, digest: str) -> str | None:
    try:
        outcome = jobs.run_validation(version_id, digest)
    except SoftTimeLimitExceeded as exc:
        jobs.record_platform_error(version_id, digest, exc, "timeout")
        return "error"
    except Exception as exc:  # noqa: BLE001 - storage, database or a bug: ours, never the adapter's
        fault = exc if isinstance(exc, PlatformFault) else PlatformFault(
            f"{type(exc).__name__}: {exc}", code="internal_error")
        if self.request.retries >= settings.HUB_VALIDATION_RETRIES or jobs.attempts_exhausted(version_id):
            jobs.record_platform_error(version_id, digest, fault, fault.code)
            return "error"
        raise self.retry(exc=fault, countdown=settings.HUB_VALIDATION_RETRY_BACKOFF * 2 ** self.request.retries)
    return outcome.status if outcome is not None else None


@task_failure.connect
def _record_hard_time_limit(sender=None, exception=None, args=None, **kwargs):
    """The hard time limit kills the pool child: the worker's main process records ``error: timeout``."""
    if getattr(sender, "name", None) == VALIDATE_VERSION_TASK and isinstance(exception, TimeLimitExceeded) and args:
        jobs.record_platform_error(args[0], args[1], exception, "timeout")


@shared_task(name=TRY_ADAPTER_TASK, acks_late=False, soft_time_limit=60, time_limit=90)
def try_adapter(version_id: int, text: str) -> dict:
    """The try-it answer; {"error": why} when this version cannot be tried (the page shows it as it is)."""
    from .errors import UsageError
    from .tryit import run_try

    try:
        return run_try(version_id, text)
    except UsageError as exc:
        return {"error": exc.detail}


@shared_task(name=PING_TASK, acks_late=False)
def ping() -> str:
    """Answers "pong": the run command's --check proves a worker consumes the queue."""
    return "pong"
