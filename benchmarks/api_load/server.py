"""A throwaway Postgres database and a gunicorn server on 127.0.0.1 for the benchmarks."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PG_URL = "postgres://postgres@127.0.0.1:5432"


def recreate_database(name: str) -> str:
    """Drop and create database ``name``; returns its URL."""
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    return f"{PG_URL}/{name}"


def drop_database(name: str) -> None:
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def start_server(port: int, *, workers: int = 2, threads: int = 4, ready_path: str = "/api/v1/",
                 env: dict | None = None, timeout: float = 60.0) -> subprocess.Popen:
    """gunicorn (gthread) serving hubsite.wsgi on 127.0.0.1:``port``; returns once it answers."""
    cmd = [sys.executable, "-m", "gunicorn", "hubsite.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
           "--keep-alive", "30", "--log-level", "warning", "--timeout", "120"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env={**os.environ, **(env or {})})
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"gunicorn exited with status {proc.returncode}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}{ready_path}", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.3)
    stop_server(proc)
    raise SystemExit("gunicorn did not start")


def stop_server(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(5)
