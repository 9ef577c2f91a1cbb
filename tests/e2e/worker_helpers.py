"""Real Celery worker processes for the end-to-end validation tests.

A worker is ``celery -A hubsite worker -Q QUEUE -c 1 --pool prefork`` (or the fault-injecting wrapper
``tests/e2e/faulty_worker.py``) started with the test process's database, weights folder, broker and
backbone allow-list in its environment. Its output goes to a log file, shown when a wait times out and
after every failed test (``show_worker_logs``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import quote

import pytest
from celery import Celery
from django.db import connection
from django.test import override_settings

from registry.choices import FINAL_STATUSES
from registry.models import AdapterVersion, Subtask
from tests.services import service_missing

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"@\S+ ready\.")
E2E_REDIS_URL = os.environ.get("TEST_E2E_REDIS_URL", "redis://127.0.0.1:6379/12")
# The fault tests flush their broker's database (a Redis restart): one that nothing else uses.
FAULTS_REDIS_URL = os.environ.get("TEST_E2E_FAULTS_REDIS_URL", "redis://127.0.0.1:6379/10")
TINY = "tiny-bert"
# Aliases of the tiny backbone: the faulty worker misbehaves for some of them (by model_name).
TINY_ALIASES = ("tiny-bert-kill-once", "tiny-bert-poison", "tiny-bert-slow", "tiny-bert-hang")
EVALUATION_SAMPLE = [
    {"text": "a wonderful, moving film", "label": "positive"},
    {"text": "dull and far too long", "label": "negative"},
    {"text": "I loved every minute of it", "label": "positive"},
    {"text": "the worst script of the year", "label": "negative"},
]


@dataclass
class Broker:
    """Where the test process sends validation tasks and where the worker reads them."""

    url: str
    queue: str
    result_backend: str
    env: dict = field(default_factory=dict)  # extra worker environment (the embedded broker's folder)
    settings: dict = field(default_factory=dict)  # the test process's overrides

    def redis(self):
        import redis

        return redis.Redis.from_url(self.url)

    def drop(self) -> None:
        """Remove the queue and kombu's bindings of it from Redis."""
        client = self.redis()
        client.delete(self.queue, *client.scan_iter(match=f"_kombu.binding*.{self.queue}"))


def redis_broker(url: str = E2E_REDIS_URL) -> Broker:
    """A queue of its own on the e2e Redis database; missing Redis fails in CI, skips elsewhere."""
    try:
        import redis

        redis.Redis.from_url(url, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001 - any failure means the service is missing
        service_missing(f"Redis at {url}: {exc}")
    queue = f"validation-e2e-{os.getpid()}-{uuid.uuid4().hex[:6]}"
    return Broker(url=url, queue=queue, result_backend=url,
                  settings={"CELERY_BROKER_URL": url, "CELERY_TASK_DEFAULT_QUEUE": queue,
                            "CELERY_RESULT_BACKEND": url})


def filesystem_broker(folder: Path) -> Broker:
    """The embedded broker: kombu's filesystem transport under ``folder``, results as files."""
    queue_dir, processed, control = folder / "queue", folder / "processed", folder / "control"
    results = folder / "results"
    for path in (queue_dir, processed, control, results):
        path.mkdir(parents=True, exist_ok=True)
    options = {"data_folder_in": str(queue_dir), "data_folder_out": str(queue_dir),
               "processed_folder": str(processed), "control_folder": str(control), "store_processed": False,
               "visibility_timeout": 900}
    backend = "file://" + str(results)
    return Broker(url="filesystem://", queue="validation", result_backend=backend,
                  env={"CELERY_BROKER_URL": "filesystem://", "HUB_BROKER_DIR": str(folder)},
                  settings={"CELERY_BROKER_URL": "filesystem://", "CELERY_BROKER_TRANSPORT_OPTIONS": options,
                            "CELERY_RESULT_BACKEND": backend, "CELERY_TASK_DEFAULT_QUEUE": "validation"})


@contextlib.contextmanager
def publishing_to(broker: Broker, **more_settings):
    """Within: the test process's settings name ``broker``, and a Celery app built from them (as
    hubsite/celery.py builds its own) is the current app, so uploads enqueue there."""
    from celery import current_app

    previous = current_app._get_current_object()
    with override_settings(**broker.settings, **more_settings):
        app = Celery("hubsite-e2e", set_as_current=False)
        app.config_from_object("django.conf:settings", namespace="CELERY")
        app.conf.broker_connection_retry = False
        assert app.conf.broker_url == broker.url  # read now, while the override holds
        app.set_current()
        try:
            yield app
        finally:
            previous.set_current()
            app.close()


def database_url() -> str:
    """The URL of the database this test process uses (its test database)."""
    db = connection.settings_dict
    auth = quote(db["USER"] or "postgres") + (":" + quote(db["PASSWORD"]) if db.get("PASSWORD") else "")
    return f"postgres://{auth}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"


def worker_env(broker: Broker, allow_list: Path, weights_dir: str, tmp: Path, **extra: str) -> dict:
    """The environment of a worker that shares this process's database, weights store and broker."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CELERY_", "HUB_", "TEST_"))}
    upload_tmp = tmp / "upload-tmp"
    upload_tmp.mkdir(parents=True, exist_ok=True)
    env.update({
        "DJANGO_SETTINGS_MODULE": "hubsite.settings.test", "TEST_DATABASE_URL": database_url(),
        "TEST_WEIGHTS_DIR": weights_dir, "TEST_UPLOAD_TMP_DIR": str(upload_tmp),
        "TEST_CELERY_BROKER_URL": broker.url, "CELERY_RESULT_BACKEND": broker.result_backend,
        "HUB_VALIDATOR_BACKBONES": str(allow_list), "HUB_VAR_DIR": str(tmp / "var"),
        "HUB_VALIDATOR_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
        "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "HUB_LOG_LEVEL": "INFO",
    })
    env.update(broker.env)
    env.update({k: str(v) for k, v in extra.items()})
    return env


class Worker:
    """One worker process (with its pool child) in a process group of its own."""

    def __init__(self, queue: str, env: dict, log_path: Path, faulty: bool = False):
        worker_args = ["worker", "-Q", queue, "-c", "1", "--pool", "prefork", "--loglevel", "INFO",
                       "-n", f"e2e-{uuid.uuid4().hex[:8]}@%h", "--without-gossip", "--without-mingle",
                       "--without-heartbeat"]
        if faulty:
            self.argv = [sys.executable, "-m", "tests.e2e.faulty_worker", *worker_args]
        else:
            self.argv = [sys.executable, "-m", "celery", "-A", "hubsite", *worker_args]
        self.env, self.log_path = env, log_path
        self.process: subprocess.Popen | None = None
        self.mark = 0  # log offset at the start of the current test

    def start(self, timeout: float = 90.0) -> "Worker":
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        offset = len(self.log())  # a restarted worker appends to its log
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(self.argv, cwd=ROOT, env=self.env, stdout=log,
                                            stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if READY.search(self.log()[offset:]):
                return self
            if self.process.poll() is not None:
                break
            time.sleep(0.1)
        self.stop()
        pytest.fail(f"the worker did not become ready within {timeout}s\n{self.tail()}", pytrace=False)

    def stop(self, timeout: float = 20.0) -> None:
        """Warm shutdown (SIGTERM to the group); SIGKILL to the group when it hangs."""
        if self.process is None:
            return
        if self.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(5)
        with contextlib.suppress(ProcessLookupError):  # a pool child left behind by a killed parent
            os.killpg(self.process.pid, signal.SIGKILL)
        self.process = None

    def kill(self) -> None:
        """SIGKILL to the whole worker (main process and pool child), as a machine crash would."""
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(10)
        self.process = None

    @property
    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def log(self) -> str:
        try:
            return self.log_path.read_text(encoding="utf-8", errors="replace")
        except FileNotFoundError:
            return ""

    def tail(self, chars: int = 6000, since_mark: bool = False) -> str:
        text = self.log()[self.mark:] if since_mark else self.log()
        return f"--- worker log {self.log_path} (last {chars} chars) ---\n{text[-chars:]}"

    def count(self, pattern: str) -> int:
        """How many times ``pattern`` (a regex) occurs in the log since the current test began."""
        return len(re.findall(pattern, self.log()[self.mark:]))


@contextlib.contextmanager
def logs_on_failure(*workers: Worker):
    """Marks the logs, then prints what each worker logged during the test (pytest shows it under
    'Captured stdout teardown' for a failed test only)."""
    for worker in workers:
        worker.mark = len(worker.log())
    try:
        yield workers[0] if len(workers) == 1 else workers
    finally:
        for worker in workers:
            print(worker.tail(since_mark=True))


def wait_final(version_ids, workers=(), timeout: float = 120.0) -> dict:
    """Poll the database until every version is final; {id: version}. Fails with the worker logs."""
    ids = list(version_ids)
    deadline = time.monotonic() + timeout
    while True:
        versions = {v.pk: v for v in AdapterVersion.objects.filter(pk__in=ids).select_related("adapter")}
        if len(versions) == len(ids) and all(v.status in FINAL_STATUSES for v in versions.values()):
            return versions
        if time.monotonic() > deadline:
            states = {pk: (v.status, v.attempts) for pk, v in versions.items()}
            logs = "\n".join(w.tail() for w in workers)
            pytest.fail(f"versions not final after {timeout}s: {states}\n{logs}", pytrace=False)
        time.sleep(0.1)


def wait_for(predicate, what: str, workers=(), timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    logs = "\n".join(w.tail() for w in workers)
    pytest.fail(f"timed out after {timeout}s waiting for {what}\n{logs}", pytrace=False)


def write_allow_list(folder: Path, tiny_backbone: Path, minilm: str | None = None) -> Path:
    """The JSON allow-list of the tests: the tiny backbone under its name and its aliases (and MiniLM)."""
    entries = {name: {"source": "folder", "path": str(tiny_backbone)} for name in (TINY, *TINY_ALIASES)}
    if minilm:
        from validator.backbones import MINILM

        entries[MINILM] = {"source": "folder", "path": minilm}
    path = folder / "backbones.json"
    path.write_text(json.dumps(entries, indent=2), encoding="utf-8")
    return path


def weights_location() -> str:
    from django.conf import settings

    return settings.STORAGES["weights"]["OPTIONS"]["location"]


def attach_sample(path: str = "sentiment/sst-2", sample=None) -> Subtask:
    task, subtask = path.split("/")
    row = Subtask.objects.get(task__slug=task, slug=subtask)
    row.evaluation_sample = list(EVALUATION_SAMPLE if sample is None else sample)
    row.evaluation_source = "hand-written sentences for the e2e tests"
    row.save(update_fields=["evaluation_sample", "evaluation_source"])
    return row


# --- Adapters to upload ---------------------------------------------------------------------------
def folder_files(folder: Path) -> dict:
    """An adapter folder as {file name: bytes}."""
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}


def built_adapter(backbone: Path, out: Path, model_name: str, **options) -> Path:
    """An adapter saved by our engine on ``backbone``, its configs naming ``model_name`` as the backbone."""
    from tests.validator.factories import edit_json, make_adapter

    folder = make_adapter(backbone, out, **options)
    for name in ("adapter_config.json", "head_config.json"):
        if (folder / name).exists():
            edit_json(folder, name, lambda d: d.update(model_name=model_name))
    return folder


def _break_shape(folder: Path) -> None:
    import torch

    from tests.validator.factories import edit_weights, first_key

    key = first_key(folder, "adapter_down.0.weight")
    edit_weights(folder, lambda t: t.__setitem__(key, torch.zeros(5, 32)))


def _drop_key(folder: Path) -> None:
    from tests.validator.factories import edit_weights, first_key

    key = first_key(folder, "layer.1.output.adapters.demo.adapter_up.bias")
    edit_weights(folder, lambda t: t.pop(key))


def _extra_key(folder: Path) -> None:
    import torch

    from tests.validator.factories import edit_weights

    key = "bert.encoder.layer.0.output.adapters.demo.adapter_side.weight"
    edit_weights(folder, lambda t: t.__setitem__(key, torch.zeros(3)))


def _nan(folder: Path) -> None:
    from tests.validator.factories import edit_weights, first_key

    key = first_key(folder, "adapter_up.weight")
    edit_weights(folder, lambda t: t[key].__setitem__((0, 0), float("nan")))


def _huge_output(folder: Path) -> None:
    from tests.validator.factories import edit_weights

    edit_weights(folder, lambda t: [v.fill_(3e38) for k, v in t.items() if "adapter_up.weight" in k])


def _wrong_head(folder: Path) -> None:
    from tests.validator.factories import edit_json

    edit_json(folder, "head_config.json", lambda d: d["config"].update(num_labels=3, label2id=None))


# code -> (model_name, how the adapter is broken); unknown_backbone: a well-formed name off the list
BROKEN = {
    "shape_mismatch": (TINY, _break_shape), "missing_keys": (TINY, _drop_key),
    "unexpected_keys": (TINY, _extra_key), "non_finite_weights": (TINY, _nan),
    "non_finite_output": (TINY, _huge_output), "head_shape": (TINY, _wrong_head),
    "unknown_backbone": ("bert-base-uncased", None),
}


def broken_adapters(backbone: Path, root: Path) -> dict:
    """code -> (model_name, files) of an adapter that fails that validator check."""
    made = {}
    for code, (model_name, breaker) in BROKEN.items():
        folder = built_adapter(backbone, root / code, model_name)
        if breaker is not None:
            breaker(folder)
        made[code] = (model_name, folder_files(folder))
    return made
