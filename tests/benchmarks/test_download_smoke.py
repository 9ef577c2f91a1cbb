"""The download benchmark end to end at tiny scale (1 MB, 2 rounds) in its own process, against real
gunicorn, Postgres, Redis and a moto S3 server on 127.0.0.1: its code path runs, the figures it
prints and saves are sane, and it leaves no database behind."""

from __future__ import annotations

import json
import math
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.services import free_port, service_missing

ROOT = Path(__file__).resolve().parents[2]
# 2 layers x 2 x (256 x 256 + 256) float32 parameters, plus the safetensors header
TENSOR_BYTES = 2 * 2 * (256 * 256 + 256) * 4


@pytest.fixture(autouse=True)
def services():
    for name, port in (("Postgres", 5432), ("Redis", 6379)):
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            service_missing(f"{name} on 127.0.0.1:{port}")


def _databases() -> set[str]:
    import psycopg

    with psycopg.connect("postgres://postgres@127.0.0.1:5432/postgres", autocommit=True) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def _row(stdout: str, heading: str) -> list[str]:
    """The '1 MB' row of the table under ``heading``, split into columns."""
    table = stdout[stdout.index(heading):]
    line = next(line for line in table.splitlines() if line.startswith("1 MB"))
    return line.split()


def _positive(value) -> bool:
    return isinstance(value, (int, float)) and math.isfinite(value) and value > 0


@pytest.mark.parametrize("link_mbps", [None, 40.0], ids=["loopback", "link-40mbps"])
def test_download_benchmark_at_1_mb_prints_and_saves_sane_figures(tmp_path, link_mbps):
    saved = tmp_path / "run.json"
    db_name = f"bench_smoke_download_{os.getpid()}"
    env = {k: v for k, v in os.environ.items()
           if k not in {"DJANGO_SETTINGS_MODULE", "DATABASE_URL", "ADAPTERS_OFFLINE", "ADAPTERS_CACHE"}}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.download", "--sizes", "1", "--rounds", "2", "--db-name", db_name,
         "--port", str(free_port()), "--max-seconds", "120", "--save", str(saved),
         *(["--link-mbps", str(link_mbps)] if link_mbps else [])],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode in (0, 1), proc.stdout[-3000:] + proc.stderr[-3000:]  # 1: a target missed

    data = json.loads(saved.read_text())
    assert data["meta"]["link_mbps"] == link_mbps
    result = data["sizes"]["1"]
    size = result["weights_bytes"]
    assert TENSOR_BYTES < size < TENSOR_BYTES + 4096, size
    download, load = result["download"], result["load"]
    for side in (download, load):
        assert len(side["measured"]) == 2 and len(side["baseline"]) == 3, side  # interleaved, baseline around
        assert side["baseline_bytes"] + side["measured_bytes"] == [size] * 5, side
        assert side["checked"] == 2, side  # the downloaded bytes and the loaded parameters were verified
        assert all(_positive(v) for v in side["baseline"] + side["measured"] + side["ratios"]), side
        assert len(side["ratios"]) == 2
        assert side["ratio_min"] <= side["ratio_median"] <= side["ratio_max"], side
    assert set(result["breakdown"]) == {"resolve_ms", "direct_resolve_ms", "redirect_ms", "sha256_ms", "write_fsync_ms"}
    assert all(_positive(v) for v in result["breakdown"].values()), result["breakdown"]
    # the ratios are measured / mean of the two baseline rounds around it
    first = download["measured"][0] / ((download["baseline"][0] + download["baseline"][1]) / 2)
    assert download["ratios"][0] == pytest.approx(first)

    if link_mbps:  # both sides crossed the link: neither beat its rate (MB = 10^6 bytes; one burst is free)
        from benchmarks.download.link import BURST

        ceiling = link_mbps / 8 * size / (size - BURST)
        for mb_per_s in download["baseline"] + download["measured"]:
            assert mb_per_s <= ceiling, (download, ceiling)
        assert f"across a {link_mbps:g} Mbit/s link" in proc.stdout
    else:
        assert "over loopback" in proc.stdout
    cold = _row(proc.stdout, "Cold download vs raw GET")
    assert cold[2:5] == [str(size), "2", f"{download['baseline_median']:.1f}"], cold
    assert float(cold[5]) == pytest.approx(download["measured_median"], abs=0.051)
    assert re.fullmatch(r"\d+\.\d\dx", cold[6]) and float(cold[6][:-1]) > 0, cold
    warm = _row(proc.stdout, "Warm model.load_adapter")
    assert warm[2:4] == [str(size), "2"], warm
    assert float(warm[4]) == pytest.approx(load["baseline_median"] * 1000, abs=0.051)
    assert float(warm[6][:-1]) == pytest.approx(load["ratio_median"], abs=0.0051), warm
    assert f"every transfer and load had the file's {size} bytes" in proc.stdout
    assert "VERDICT:" in proc.stdout

    assert db_name not in _databases()  # cleaned up
