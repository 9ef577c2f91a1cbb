"""One real worker's throughput: N versions queued (uploaded through the upload service into a Postgres
database of their own, their tasks in a Redis queue of their own), then one worker process started;
timed from its "ready" line to the last verdict. Backbone loads are counted from the reports (the
backbone check's ``cached`` figure is False when that validation loaded the backbone).
"""

from __future__ import annotations

import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.api_load.server import drop_database, recreate_database

ROOT = Path(__file__).resolve().parents[2]
REDIS_URL = os.environ.get("BENCH_VALIDATION_REDIS_URL", "redis://127.0.0.1:6379/11")
IDENTIFIER = "sentiment/sst-2@bench"


@dataclass
class Run:
    work: Path
    db_name: str
    queue: str
    env: dict = field(default_factory=dict)


def prepare(db_name: str) -> Run:
    """A fresh database (migrated), directories and environment; Django set up in this process."""
    work = Path(tempfile.mkdtemp(prefix="bench-validation-"))
    run = Run(work, db_name, f"validation-bench-{os.getpid()}-{uuid.uuid4().hex[:6]}")
    (work / "upload-tmp").mkdir()
    run.env = {
        "DJANGO_SETTINGS_MODULE": "benchmarks.validation.settings", "DATABASE_URL": recreate_database(db_name),
        "HUB_VAR_DIR": str(work / "var"), "HUB_WEIGHTS_DIR": str(work / "weights"),
        "HUB_UPLOAD_TMP_DIR": str(work / "upload-tmp"), "CELERY_BROKER_URL": REDIS_URL,
        "CELERY_RESULT_BACKEND": REDIS_URL, "BENCH_QUEUE": run.queue, "HUB_LOG_LEVEL": "INFO",
        "HUB_VALIDATOR_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
    }
    os.environ.update(run.env)
    try:
        import django

        django.setup()
        from django.core.management import call_command

        call_command("migrate", verbosity=0)
    except BaseException:
        cleanup(run)
        raise
    return run


def cleanup(run: Run, keep: bool = False) -> None:
    """Remove the queue, and unless ``keep`` the database and the work directory."""
    import redis

    client = redis.Redis.from_url(REDIS_URL)
    client.delete(run.queue, *client.scan_iter(match=f"_kombu.binding*.{run.queue}"))
    from django.db import connections

    connections.close_all()
    if not keep:
        drop_database(run.db_name)
        shutil.rmtree(run.work, ignore_errors=True)


def queue_versions(run: Run, adapter: Path, count: int) -> list:
    """``count`` versions of the adapter (each with its own weights), uploaded and queued; their ids."""
    import numpy as np
    from safetensors.numpy import load_file, save_file

    from registry.choices import Role, TokenScope
    from registry.models import Membership, Organisation, Subtask, Task
    from registry.services.upload import upload_version
    from registry.tokens import create_token
    from validator.backbones import MINILM

    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_user(username="bench", password="bench-pw")
    org = Organisation.objects.create(slug="bench", name="Bench")
    Membership.objects.create(organisation=org, user=user, role=Role.MAINTAINER)
    task = Task.objects.create(slug="sentiment", name="Sentiment")
    Subtask.objects.create(task=task, slug="sst-2", name="SST-2")
    token, _ = create_token(user, scope=TokenScope.UPLOAD)
    weights = load_file(str(adapter / "adapter.safetensors"))
    ids = []
    for n in range(count):
        copy = run.work / "uploads" / str(n)
        shutil.copytree(adapter, copy)
        rng = np.random.default_rng(n)
        save_file({k: (v + rng.standard_normal(v.shape).astype(v.dtype) * 1e-3) for k, v in weights.items()},
                  str(copy / "adapter.safetensors"), metadata={"format": "pt"})
        files = [(p.name, str(p)) for p in sorted(copy.iterdir())]
        result = upload_version(user, token, IDENTIFIER, files, MINILM, f"1.0.{n}")
        ids.append(result.version.pk)
    return ids


def queued(run: Run) -> int:
    import redis

    return redis.Redis.from_url(REDIS_URL).llen(run.queue)


def start_worker(run: Run, log_path: Path) -> tuple[subprocess.Popen, float]:
    """The worker process; returns it with the monotonic time its "ready" line appeared."""
    argv = [sys.executable, "-m", "celery", "-A", "hubsite", "worker", "-Q", run.queue, "-c", "1", "--pool",
            "prefork", "--loglevel", "INFO", "-n", f"bench-{uuid.uuid4().hex[:6]}@%h", "--without-gossip",
            "--without-mingle", "--without-heartbeat"]
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env={**os.environ, **run.env}, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if " ready." in log_path.read_text(errors="replace"):
            return proc, time.monotonic()
        if proc.poll() is not None:
            break
        time.sleep(0.05)
    stop_worker(proc)
    raise SystemExit(f"the worker did not start; its log:\n{log_path.read_text(errors='replace')[-4000:]}")


def stop_worker(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


def wait_all_final(ids: list, timeout: float) -> float:
    from registry.choices import FINAL_STATUSES
    from registry.models import AdapterVersion

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        done = AdapterVersion.objects.filter(pk__in=ids, status__in=list(FINAL_STATUSES)).count()
        if done == len(ids):
            return time.monotonic()
        time.sleep(0.05)
    raise SystemExit(f"not every version was final after {timeout}s")


def gather(ids: list, ready_at: float, done_at: float) -> dict:
    """Throughput and per-validation figures from the versions' reports."""
    from registry.models import AdapterVersion

    versions = list(AdapterVersion.objects.filter(pk__in=ids).order_by("validated_at"))
    statuses = {v.status for v in versions}
    backbone = [next(c for c in v.validation_report["checks"] if c["name"] == "backbone")["figures"]
                for v in versions if v.validation_report.get("checks")]
    seconds = [v.validation_report.get("seconds") for v in versions if v.validation_report.get("seconds")]
    first, last = versions[0].validated_at, versions[-1].validated_at
    steady = (len(versions) - 1) / (last - first).total_seconds() if len(versions) > 1 and last > first else None
    return {
        "versions": len(versions), "statuses": sorted(statuses), "wall_seconds": done_at - ready_at,
        "per_second": len(versions) / (done_at - ready_at), "steady_per_second": steady,
        "backbone_loads": sum(1 for f in backbone if not f.get("cached")),
        "attempts": sorted({v.attempts for v in versions}),
        "report_seconds_median": statistics.median(seconds) if seconds else None,
        "report_seconds_first": versions[0].validation_report.get("seconds"),
    }


def run_throughput(run: Run, adapter: Path, count: int) -> dict:
    """Queue ``count`` versions, start the worker, time it until every version is final."""
    ids = queue_versions(run, adapter, count)
    waiting = queued(run)
    proc, ready_at = start_worker(run, run.work / "worker.log")
    try:
        done_at = wait_all_final(ids, timeout=60 + 20 * count)
    finally:
        stop_worker(proc)
    result = gather(ids, ready_at, done_at)
    result["queued_before_start"] = waiting
    return result
