"""A live hub for the load test and the soak: a fresh Postgres database, a private weights
store (a directory, or a bucket on a local moto S3 server), an upload temp dir, an uploader with
an upload token, and gunicorn on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.api_load.server import drop_database, recreate_database, start_server, stop_server

ORG = "soak-org"
TASK = "soak"
SUBTASKS = [f"s-{i}" for i in range(40)]


@dataclass
class Hub:
    port: int
    db_name: str
    work_dir: Path
    upload_tmp: Path
    store: str
    token: str = ""
    weights_dir: Path | None = None
    s3: dict = field(default_factory=dict)
    identifiers: list[str] = field(default_factory=list)  # seeded, each resolving to one adapter
    procs: list = field(default_factory=list)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _start_moto(env: dict, s3_front=None) -> tuple[subprocess.Popen, dict]:
    """A moto S3 server on 127.0.0.1 with one bucket; returns the process and the S3 settings.

    ``s3_front(endpoint) -> endpoint``: what the hub is told instead of the server's own address (a
    link in front of it, benchmarks/download/link.py); the settings keep the server's own address."""
    import boto3

    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    client = boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="test", aws_secret_access_key="test",
                          region_name="us-east-1")
    deadline = time.monotonic() + 30
    while True:
        try:
            client.create_bucket(Bucket="soak-weights")
            break
        except Exception:  # noqa: BLE001 - not listening yet
            if time.monotonic() > deadline:
                proc.kill()
                raise SystemExit("moto S3 server did not start")
            time.sleep(0.3)
    hub_endpoint = s3_front(endpoint) if s3_front is not None else endpoint
    env.update({"HUB_S3_BUCKET": "soak-weights", "HUB_S3_ENDPOINT_URL": hub_endpoint, "HUB_S3_ACCESS_KEY_ID": "test",
                "HUB_S3_SECRET_ACCESS_KEY": "test"})
    return proc, {"endpoint": endpoint, "bucket": "soak-weights", "client": client}


def prepare_hub(port: int, db_name: str, store: str = "fs", seed_adapters: int = 0, s3_front=None) -> Hub:
    """Everything but the server: database, directories, data, token. Sets up Django here.

    ``s3_front``: see ``_start_moto`` (S3 store only)."""
    work = Path(tempfile.mkdtemp(prefix="hub-soak-"))
    hub = Hub(port, db_name, work, work / "upload-tmp", store)
    hub.upload_tmp.mkdir()
    env = {"DJANGO_SETTINGS_MODULE": "benchmarks.load_soak.settings", "DATABASE_URL": recreate_database(db_name),
           "HUB_VAR_DIR": str(work), "HUB_UPLOAD_TMP_DIR": str(hub.upload_tmp)}
    if store == "s3":
        proc, hub.s3 = _start_moto(env, s3_front)
        hub.procs.append(proc)
    else:
        hub.weights_dir = work / "weights"
        env["HUB_WEIGHTS_DIR"] = str(hub.weights_dir)
    os.environ.update(env)
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    cache.clear()
    hub.token = _make_uploader()
    if seed_adapters:
        from benchmarks.api_load.seed import seed

        hub.identifiers = seed(seed_adapters)
    from django.db import connections

    connections.close_all()
    return hub


def _make_uploader() -> str:
    from django.contrib.auth import get_user_model

    from registry.choices import Role, TokenScope
    from registry.models import Membership, Organisation, Subtask, Task
    from registry.tokens import create_token

    user = get_user_model().objects.create_user(username="soak-uploader", password="soak-uploader-pw")
    org = Organisation.objects.create(slug=ORG, name="Soak")
    Membership.objects.create(organisation=org, user=user, role=Role.MAINTAINER)
    task = Task.objects.create(slug=TASK, name="Soak")
    Subtask.objects.bulk_create([Subtask(task=task, slug=s, name=s) for s in SUBTASKS])
    _, raw = create_token(user, scope=TokenScope.UPLOAD, name="soak")
    return raw


def start(hub: Hub, workers: int = 2, threads: int = 4) -> None:
    hub.procs.insert(0, start_server(hub.port, workers=workers, threads=threads))


def stop(hub: Hub, keep: bool = False) -> None:
    """Stop the servers; remove the database and the directories unless ``keep``."""
    for proc in hub.procs:
        stop_server(proc)
    hub.procs.clear()
    from django.db import connections

    connections.close_all()
    if not keep:
        drop_database(hub.db_name)
        shutil.rmtree(hub.work_dir, ignore_errors=True)
