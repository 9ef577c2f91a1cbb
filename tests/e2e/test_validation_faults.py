"""Faults survived with real worker processes (RELIABILITY.md, "Faults survived, nothing lost").

The faults are injected by tests/e2e/faulty_worker.py (a wrapper around the real worker), chosen by the
upload's model_name: aliases of one tiny backbone on the allow-list.
"""

from __future__ import annotations

import json
import time

import pytest

from registry.choices import VersionStatus
from registry.models import AdapterVersion
from registry.services import lifecycle
from tests.registry.upload_helpers import maintainer_setup, post_upload
from tests.validator.factories import save_backbone

from .worker_helpers import (
    FAULTS_REDIS_URL, TINY, Worker, built_adapter, folder_files, logs_on_failure, publishing_to, redis_broker,
    wait_final, wait_for, weights_location, worker_env, write_allow_list,
)

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.services, pytest.mark.slow]

KILL_ONCE, POISON, SLOW, HANG = "tiny-bert-kill-once", "tiny-bert-poison", "tiny-bert-slow", "tiny-bert-hang"
MAX_ATTEMPTS = 2
SOFT_LIMIT = 2
VISIBILITY = 3  # the new worker's broker visibility timeout in the crash test
RECEIVED = r"Task validator\.validate_version\[[^\]]+\] received"
KILLED = r"exited with 'signal 9 \(SIGKILL\)'"


@pytest.fixture(scope="module")
def e2e_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("e2e-faults")


@pytest.fixture(scope="module")
def tiny(e2e_dir):
    backbone = save_backbone(e2e_dir / "tiny-bert", tokenizer=True)
    return {"backbone": backbone, "allow_list": write_allow_list(e2e_dir, backbone)}


@pytest.fixture(scope="module")
def broker(django_db_setup, tiny):
    """The test process publishes to a Redis queue of its own for the whole module."""
    made = redis_broker(FAULTS_REDIS_URL)  # a database of its own: the lost-tasks test flushes it
    with publishing_to(made, HUB_VALIDATOR_BACKBONES=str(tiny["allow_list"]),
                       HUB_VALIDATION_MAX_ATTEMPTS=MAX_ATTEMPTS):
        yield made
    made.drop()


def faulty_worker(broker, tiny, e2e_dir, name: str, faults: dict, **env) -> Worker:
    environment = worker_env(broker, tiny["allow_list"], weights_location(), e2e_dir / name,
                             E2E_FAULTS=json.dumps(faults), E2E_FAULT_MARKERS=str(e2e_dir / name / "markers"),
                             HUB_VALIDATION_MAX_ATTEMPTS=MAX_ATTEMPTS, **env)
    return Worker(broker.queue, environment, e2e_dir / f"{name}.log", faulty=True)


@pytest.fixture(scope="module")
def killer(broker, tiny, e2e_dir):
    """One faulty worker for the module: SIGKILLs its pool child once per version (KILL_ONCE) or always
    (POISON); other model names validate normally."""
    worker = faulty_worker(broker, tiny, e2e_dir, "killer", {KILL_ONCE: "kill-once", POISON: "kill-always"})
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


@pytest.fixture
def worker(killer):
    with logs_on_failure(killer) as shown:
        yield shown


@pytest.fixture(scope="module")
def adapter_files(tiny, e2e_dir):
    """One valid adapter's files per model name (the declared model_name must match the upload's)."""
    return {name: folder_files(built_adapter(tiny["backbone"], e2e_dir / f"adapter-{name}", name))
            for name in (TINY, KILL_ONCE, POISON, SLOW, HANG)}


def upload(client, token, files, model_name, version) -> AdapterVersion:
    response = post_upload(client, files, token, model_name=model_name, version=version)
    assert response.status_code == 201, response.content
    return AdapterVersion.objects.get(adapter__model_name=model_name, version=version)


def test_worker_killed_mid_validation_redelivers_to_one_final_state(client, worker, adapter_files):
    _, _, token = maintainer_setup()
    version = upload(client, token, adapter_files[KILL_ONCE], KILL_ONCE, "1")
    final = wait_final([version.pk], [worker])[version.pk]
    assert (final.status, final.attempts) == (VersionStatus.VALID, 2), final.validation_report
    assert final.validation_report["verdict"] == "valid" and final.error_code == ""
    assert worker.count(KILLED) == 1 and worker.count(RECEIVED) == 2
    assert worker.count(rf"version {version.pk} validated: ") == 1  # one final state recorded, once
    time.sleep(1.0)  # nothing delivered again after the verdict
    again = AdapterVersion.objects.get(pk=version.pk)
    assert (again.status, again.attempts, again.validated_at) == (final.status, 2, final.validated_at)
    assert worker.count(RECEIVED) == 2 and worker.alive


def test_a_job_that_always_kills_its_worker_ends_worker_lost_after_the_cap(client, worker, adapter_files):
    _, _, token = maintainer_setup()
    poison = upload(client, token, adapter_files[POISON], POISON, "1")
    final = wait_final([poison.pk], [worker])[poison.pk]
    assert (final.status, final.error_code, final.attempts) == (VersionStatus.ERROR, "worker_lost", MAX_ATTEMPTS)
    assert final.validation_report["errors"][0]["code"] == "worker_lost"
    assert worker.count(KILLED) == MAX_ATTEMPTS and worker.count(RECEIVED) == MAX_ATTEMPTS + 1
    # the worker is still serving: a good version after the poison one validates
    good = upload(client, token, adapter_files[TINY], TINY, "2")
    assert wait_final([good.pk], [worker])[good.pk].status == VersionStatus.VALID


def test_tasks_lost_with_redis_are_swept_and_all_reach_a_final_state(client, worker, broker, adapter_files,
                                                                     settings):
    settings.HUB_STALE_AFTER_SECONDS = 0
    _, _, token = maintainer_setup()
    worker.stop()
    try:
        uploaded = [upload(client, token, adapter_files[TINY], TINY, str(n)) for n in range(1, 4)]
        ids = [v.pk for v in uploaded]
        redis = broker.redis()
        assert redis.llen(broker.queue) == 3
        # one was claimed by a worker that then vanished with the broker: stuck in validating
        assert lifecycle.start_validation(ids[0], uploaded[0].digest) is not None
        redis.flushdb()  # a Redis restart without persistence: the queued tasks are gone
        assert redis.llen(broker.queue) == 0
        states = dict(AdapterVersion.objects.filter(pk__in=ids).values_list("pk", "status"))
        assert states == {ids[0]: "validating", ids[1]: "pending", ids[2]: "pending"}
        time.sleep(0.01)  # status_changed_at strictly before the sweep's cutoff
        assert lifecycle.sweep_stale_versions() == 3
        assert redis.llen(broker.queue) == 3
    finally:
        worker.start()
    versions = wait_final(ids, [worker])
    got = {pk: (v.status, v.attempts) for pk, v in versions.items()}
    assert got == {ids[0]: (VersionStatus.VALID, 2), ids[1]: (VersionStatus.VALID, 1),
                   ids[2]: (VersionStatus.VALID, 1)}


def test_whole_worker_killed_mid_validation_a_new_worker_finishes_it(client, killer, broker, tiny, e2e_dir,
                                                                      adapter_files):
    """The worker and its child die together (a crash): the unacknowledged task comes back after the
    broker's visibility timeout, and a new worker validates it to one final state."""
    killer.stop()
    hanging = faulty_worker(broker, tiny, e2e_dir, "hanging", {HANG: "slow"}, E2E_FAULT_SLEEP=120)
    fresh = faulty_worker(broker, tiny, e2e_dir, "fresh", {}, HUB_BROKER_VISIBILITY_TIMEOUT=VISIBILITY)
    with logs_on_failure(hanging.start(), fresh):
        try:
            _, _, token = maintainer_setup()
            version = upload(client, token, adapter_files[HANG], HANG, "1")
            wait_for(lambda: hanging.count(r"FAULT: sleeping") == 1, "the hanging validation", [hanging])
            delivered = time.monotonic()
            hanging.kill()
            claimed = AdapterVersion.objects.get(pk=version.pk)
            assert (claimed.status, claimed.attempts) == (VersionStatus.VALIDATING, 1)
            assert broker.redis().llen(broker.queue) == 0  # the message is unacknowledged, not queued
            # kombu restores unacknowledged messages older than the visibility timeout when a worker starts
            # (and then only every ~100 s): start the new worker once the timeout has passed
            time.sleep(max(0.0, VISIBILITY + 1 - (time.monotonic() - delivered)))
            fresh.start()
            final = wait_final([version.pk], [fresh])[version.pk]
        finally:
            hanging.stop()
            fresh.stop()
    assert (final.status, final.attempts, final.error_code) == (VersionStatus.VALID, 2, "")
    assert fresh.count(rf"version {version.pk} validated: ") == 1


@pytest.fixture(scope="module")
def sleeper(broker, tiny, e2e_dir):
    """A faulty worker whose SLOW jobs outlast its soft time limit (the hard limit is far above it)."""
    worker = faulty_worker(broker, tiny, e2e_dir, "sleeper", {SLOW: "slow"}, E2E_FAULT_SLEEP=60,
                           HUB_VALIDATION_SOFT_TIME_LIMIT=SOFT_LIMIT, HUB_VALIDATION_TIME_LIMIT=120)
    worker.start()
    try:
        yield worker
    finally:
        worker.stop()


def test_soft_time_limit_ends_as_timeout_without_a_second_run(client, killer, sleeper, adapter_files):
    killer.stop()  # only the sleeper consumes the queue now
    with logs_on_failure(sleeper):
        _, _, token = maintainer_setup()
        slow = upload(client, token, adapter_files[SLOW], SLOW, "1")
        wait_for(lambda: AdapterVersion.objects.get(pk=slow.pk).status == VersionStatus.VALIDATING,
                 "the slow version to be claimed", [sleeper])
        started = time.monotonic()
        final = wait_final([slow.pk], [sleeper], timeout=30)[slow.pk]
        assert time.monotonic() - started < 30
        assert (final.status, final.error_code, final.attempts) == (VersionStatus.ERROR, "timeout", 1)
        assert final.validation_report["errors"][0]["code"] == "timeout"
        time.sleep(1.5)  # no second run starts after the verdict
        again = AdapterVersion.objects.get(pk=slow.pk)
        assert (again.status, again.attempts) == (VersionStatus.ERROR, 1)
        assert sleeper.count(RECEIVED) == 1 and sleeper.count(r"FAULT: sleeping") == 1
        assert sleeper.count(r"SoftTimeLimitExceeded|[Ss]oft time limit") >= 1
