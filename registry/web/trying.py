"""Try an adapter on a text: a validation worker runs it (never the web process); we wait for its answer."""

from __future__ import annotations

import logging

from celery import current_app
from django.conf import settings
from django.core.cache import cache

from ..choices import TRY_ADAPTER_TASK
from ..errors import PlatformError, UserError

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 20.0
RATE_PER_MINUTE = 10
MAX_LABELS = 20
MAX_GENERATED_CHARS = 4000


class TryUnavailable(PlatformError):
    code = "try_unavailable"


class TryRefused(UserError):
    """The worker cannot run this adapter (e.g. a head type the box does not support); its reason is shown."""

    code = "try_refused"
    status = 422


class TryThrottled(UserError):
    code = "throttled"
    status = 429


def check_rate(key: str) -> None:
    """At most RATE_PER_MINUTE tries per caller and minute (the cache counts them)."""
    limit = getattr(settings, "HUB_TRY_RATE_PER_MINUTE", RATE_PER_MINUTE)
    cache_key = f"web:try:{key}"
    cache.add(cache_key, 0, timeout=60)
    try:
        used = cache.incr(cache_key)
    except ValueError:  # expired between add and incr
        cache.set(cache_key, 1, timeout=60)
        used = 1
    if used > limit:
        raise TryThrottled(f"at most {limit} tries a minute; wait a little and try again")


def run(version_id: int, text: str, timeout: float | None = None) -> dict:
    """Send TRY_ADAPTER_TASK by name and wait; TryUnavailable when no worker answers in time."""
    timeout = timeout or getattr(settings, "HUB_TRY_TIMEOUT", TIMEOUT_SECONDS)
    try:
        pending = current_app.send_task(TRY_ADAPTER_TASK, args=[version_id, text], retry=False)
    except Exception as exc:  # noqa: BLE001 - kombu raises many types for an unreachable broker
        log.warning("could not send a try-it task: %s", exc)
        raise TryUnavailable("the validation workers cannot be reached right now; try again later") from None
    try:
        answer = pending.get(timeout=timeout, disable_sync_subtasks=False)
    except NotImplementedError:  # Celery without a result backend cannot hand answers back
        log.warning("try-it needs a Celery result backend (CELERY_RESULT_BACKEND)")
        raise TryUnavailable("trying adapters is not enabled on this hub (no result backend)") from None
    except Exception as exc:  # noqa: BLE001 - a timeout, no result backend, or the worker's error
        log.warning("try-it task for version %s got no answer: %s", version_id, exc)
        raise TryUnavailable(
            f"no validation worker answered within {timeout:.0f} seconds; try again later"
        ) from None
    return normalise(answer)


def normalise(answer) -> dict:
    """Keep only well-formed labels (label text, finite score, best first), tokens, or generated text; the worker's
    refusal ({"error": why}) becomes TryRefused."""
    if not isinstance(answer, dict):
        raise TryUnavailable("the worker gave an answer this page cannot read")
    if isinstance(answer.get("error"), str):
        raise TryRefused(answer["error"][:500])
    out = {}
    if isinstance(answer.get("generated_text"), str):
        out["generated_text"] = answer["generated_text"][:MAX_GENERATED_CHARS]
    for key, fields in (("labels", ("label",)), ("tokens", ("token", "label"))):
        rows = answer.get(key)
        if isinstance(rows, list):
            out[key] = [
                {**{f: str(row[f]) for f in fields}, "score": float(row["score"])}
                for row in rows[: MAX_LABELS * 10]
                if isinstance(row, dict) and all(f in row for f in fields)
                and isinstance(row.get("score"), (int, float))
            ]
    if "labels" in out:
        out["labels"] = sorted(out["labels"], key=lambda r: -r["score"])[:MAX_LABELS]
    if not out:
        raise TryUnavailable("the worker gave an answer this page cannot read")
    return out
