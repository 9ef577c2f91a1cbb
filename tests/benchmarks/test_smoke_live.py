"""The benchmarks end to end at tiny scale (each in its own process, against real gunicorn,
Postgres and Redis on 127.0.0.1), so that their code paths cannot rot between full runs."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import free_port, service_missing

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(autouse=True)
def services():
    for name, port in (("Postgres", 5432), ("Redis", 6379)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            service_missing(f"{name} on 127.0.0.1:{port}")


def run(*args: str, timeout: float = 180) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL"}}
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_api_load_interleaves_at_least_five_rounds_and_saves_its_figures(tmp_path):
    saved = tmp_path / "run.json"
    proc = run("benchmarks.api_load", "--adapters", "120", "--rounds", "5", "--round-seconds", "0.2",
               "--concurrency", "2", "--db-name", f"bench_smoke_api_{os.getpid()}", "--port", str(free_port()),
               "--save", str(saved))
    assert proc.returncode in (0, 1), proc.stderr[-2000:]  # 1: a target missed on a busy machine
    data = json.loads(saved.read_text())
    scenarios = data["scenarios"]
    assert set(scenarios) == {"floor", "resolve", "list", "search"}
    assert scenarios["floor"]["rounds"] == 16
    for name in ("resolve", "list", "search"):
        s = scenarios[name]
        assert s["rounds"] == 5 and len(s["ratios"]) == 5, s
        assert s["ratio_min"] <= s["ratio_median"] <= s["ratio_max"]
        assert s["errors"] == 0 and set(s["statuses"]) == {"200"}, s
    assert "ratio median [min, max]" in proc.stdout


def test_soak_at_small_scale_passes_its_audit():
    proc = run("benchmarks.load_soak", "soak", "--scale", "0.1", "--db-name", f"bench_smoke_soak_{os.getpid()}",
               "--port", str(free_port()))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    assert "VERDICT: PASS" in proc.stdout
    for kind in ("unique", "identical", "racing", "conflict", "pickle-file", "cut-inside-last-field"):
        assert kind in proc.stdout


def test_load_for_a_few_seconds_has_no_errors():
    proc = run("benchmarks.load_soak", "load", "--seconds", "3", "--adapters", "40", "--resolve-rate", "10",
               "--search-rate", "4", "--upload-rate", "1", "--db-name", f"bench_smoke_load_{os.getpid()}",
               "--port", str(free_port()))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-2000:]
    lines = {line.split()[0]: line.split() for line in proc.stdout.splitlines() if line[:7] in
             ("resolve", "search ", "upload ")}
    assert set(lines) == {"resolve", "search", "upload"}
    assert all(int(cols[1]) > 0 for cols in lines.values())
