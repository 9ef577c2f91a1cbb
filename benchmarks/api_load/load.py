"""A bounded HTTP load generator: worker processes with keep-alive connections to 127.0.0.1."""

from __future__ import annotations

import http.client
import multiprocessing as mp
import statistics
import time
from dataclasses import dataclass


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies_ms:
            return float("nan")
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(q * len(data)))]

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


def _worker(port: int, paths: list[str], max_requests: int, deadline: float, out):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    latencies, errors, i = [], 0, 0
    while i < max_requests and time.monotonic() < deadline:
        path = paths[i % len(paths)]
        i += 1
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            response = conn.getresponse()
            response.read()
            if response.status >= 400:
                errors += 1
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException):
            errors += 1
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        latencies.append((time.perf_counter() - started) * 1000)
    out.put((latencies, errors))


def drive(name: str, port: int, paths: list[str], *, concurrency: int, total_requests: int,
          max_seconds: float) -> Result:
    """Send at most ``total_requests`` (and for at most ``max_seconds``) GETs over ``paths``."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    per_worker = max(1, total_requests // concurrency)
    started = time.monotonic()
    deadline = started + max_seconds
    procs = []
    for w in range(concurrency):
        shard = paths[w::concurrency] or paths
        procs.append(ctx.Process(target=_worker, args=(port, shard, per_worker, deadline, out)))
    for p in procs:
        p.start()
    latencies, errors = [], 0
    for _ in procs:
        lat, err = out.get()
        latencies.extend(lat)
        errors += err
    for p in procs:
        p.join()
    elapsed = time.monotonic() - started
    return Result(name, len(latencies), errors, elapsed, latencies)
