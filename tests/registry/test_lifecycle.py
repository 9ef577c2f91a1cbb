"""The version lifecycle (CONTRACTS.md section 4) and the sweepers, on Postgres and real Redis."""

import json
import time
from datetime import timedelta

import kombu.pools
import pytest
import redis
from django.utils import timezone

from hubsite.celery import app as celery_app
from registry.choices import VALIDATE_VERSION_TASK, VersionStatus
from registry.models import AdapterVersion
from registry.services import lifecycle

from .lifecycle_helpers import make_version

pytestmark = pytest.mark.django_db


def use_broker(url, settings):
    """Point Celery's app at ``url``, dropping connections to the previous broker."""
    settings.CELERY_BROKER_URL = url
    celery_app.conf.broker_url = url
    kombu.pools.reset()
    celery_app._pool = None
    celery_app.amqp._producer_pool = None


@pytest.fixture
def broker(redis_url, settings):
    """Point Celery at the real Redis and return a client to read its queue."""
    use_broker(redis_url, settings)
    client = redis.Redis.from_url(redis_url)
    client.delete("validation")
    yield client
    client.delete("validation")


def queued_messages(client):
    return [json.loads(raw) for raw in client.lrange("validation", 0, -1)]


def test_start_validation_claims_and_counts_attempts():
    version = make_version()
    claimed = lifecycle.start_validation(version.pk, version.digest)
    assert claimed is not None and claimed.status == VersionStatus.VALIDATING
    assert AdapterVersion.objects.get(pk=version.pk).attempts == 1


def test_start_validation_ignores_final_unknown_and_wrong_digest():
    version = make_version(status=VersionStatus.VALID)
    assert lifecycle.start_validation(version.pk, version.digest) is None
    other = make_version()
    assert lifecycle.start_validation(other.pk, "f" * 64) is None
    assert lifecycle.start_validation(10**9, other.digest) is None
    assert AdapterVersion.objects.get(pk=other.pk).attempts == 0


def test_poison_job_stops_as_worker_lost(settings):
    settings.HUB_VALIDATION_MAX_ATTEMPTS = 2
    version = make_version()
    assert lifecycle.start_validation(version.pk, version.digest)
    assert lifecycle.start_validation(version.pk, version.digest)
    assert lifecycle.start_validation(version.pk, version.digest) is None
    version.refresh_from_db()
    assert version.status == VersionStatus.ERROR
    assert version.error_code == "worker_lost"
    assert version.validation_report["errors"][0]["code"] == "worker_lost"


def test_record_validation_reaches_exactly_one_final_state():
    version = make_version(status=VersionStatus.VALIDATING)
    assert lifecycle.record_validation(version.pk, version.digest, VersionStatus.VALID, {"checks": []},
                                       verified_score=0.9)
    assert not lifecycle.record_validation(version.pk, version.digest, VersionStatus.REJECTED, {})
    version.refresh_from_db()
    assert version.status == VersionStatus.VALID
    assert version.verified_score == 0.9
    assert version.validated_at is not None


def test_record_validation_refuses_a_non_final_status():
    version = make_version()
    with pytest.raises(ValueError):
        lifecycle.record_validation(version.pk, version.digest, VersionStatus.VALIDATING, {})


def test_enqueue_sends_the_task_by_name_to_redis(broker):
    version = make_version()
    assert lifecycle.enqueue_validation(version) is True
    (message,) = queued_messages(broker)
    assert message["headers"]["task"] == VALIDATE_VERSION_TASK


def test_enqueue_with_broker_down_is_logged_not_raised(settings):
    use_broker("redis://127.0.0.1:1/0", settings)
    started = time.monotonic()
    assert lifecycle.enqueue_validation(make_version()) is False
    assert time.monotonic() - started < 30


def test_sweeper_re_enqueues_only_stale_unfinished_versions(broker, settings):
    settings.HUB_STALE_AFTER_SECONDS = 60
    old = timezone.now() - timedelta(seconds=600)
    stale_pending = make_version()
    stale_validating = make_version(status=VersionStatus.VALIDATING)
    fresh = make_version()
    done = make_version(status=VersionStatus.VALID)
    AdapterVersion.objects.filter(pk__in=[stale_pending.pk, stale_validating.pk, done.pk]).update(
        status_changed_at=old
    )
    assert lifecycle.sweep_stale_versions() == 2
    sent = {tuple(m["headers"]["argsrepr"].strip("()[]").split(", ")[:1]) for m in queued_messages(broker)}
    assert sent == {(str(stale_pending.pk),), (str(stale_validating.pk),)}
    assert fresh.pk not in {int(s[0]) for s in sent}
    # Touched: a second sweep right away sends nothing more.
    assert lifecycle.sweep_stale_versions() == 0
