"""A bounded HTTP load generator: worker processes with keep-alive connections to 127.0.0.1.

Each worker times its own requests; the elapsed time of a run is measured from the first
request sent to the last answer received (process start-up is not counted), so that short
rounds give the same request rate as long ones.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import statistics
import time
from dataclasses import dataclass, field


def percentile(data: list[float], q: float) -> float:
    """The ``q`` quantile (0..1) of ``data`` by the nearest-rank rule; NaN when empty."""
    if not data:
        return float("nan")
    ordered = sorted(data)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Result:
    name: str
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    statuses: dict[int, int] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds > 0 else 0.0

    def percentile(self, q: float) -> float:
        return percentile(self.latencies_ms, q)

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")

    @property
    def p99(self) -> float:
        return self.percentile(0.99)


def _connect(port: int) -> http.client.HTTPConnection:
    return http.client.HTTPConnection("127.0.0.1", port, timeout=30)


def _worker(port: int, paths: list[str], offset: int, max_requests: int, deadline: float, out):
    conn = _connect(port)
    latencies, errors, statuses, i = [], 0, {}, 0
    first = time.monotonic()
    while i < max_requests and time.monotonic() < deadline:
        path = paths[(offset + i) % len(paths)]
        i += 1
        started = time.perf_counter()
        try:
            conn.request("GET", path, headers={"Accept": "application/json"})
            response = conn.getresponse()
            response.read()
            statuses[response.status] = statuses.get(response.status, 0) + 1
            if response.status >= 400:
                errors += 1
            if response.getheader("Connection", "").lower() == "close":
                conn.close()
        except (OSError, http.client.HTTPException):
            errors += 1
            statuses[0] = statuses.get(0, 0) + 1
            conn.close()
            conn = _connect(port)
        latencies.append((time.perf_counter() - started) * 1000)
    conn.close()
    out.put((latencies, errors, statuses, first, time.monotonic()))


def drive(name: str, port: int, paths: list[str], *, concurrency: int, total_requests: int,
          max_seconds: float, offset: int = 0) -> Result:
    """Send at most ``total_requests`` (and for at most ``max_seconds``) GETs over ``paths``.

    ``offset`` shifts where each worker starts in its share of ``paths`` (so that successive
    short rounds do not all repeat the first few paths)."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    per_worker = max(1, total_requests // concurrency)
    deadline = time.monotonic() + max_seconds
    procs = []
    for w in range(concurrency):
        shard = paths[w::concurrency] or paths
        procs.append(ctx.Process(target=_worker, args=(port, shard, offset, per_worker, deadline, out)))
    for p in procs:
        p.start()
    latencies, errors, statuses, firsts, lasts = [], 0, {}, [], []
    for _ in procs:
        lat, err, codes, first, last = out.get()
        latencies.extend(lat)
        errors += err
        for code, count in codes.items():
            statuses[code] = statuses.get(code, 0) + count
        firsts.append(first)
        lasts.append(last)
    for p in procs:
        p.join()
    return Result(name, len(latencies), errors, max(lasts) - min(firsts), latencies, statuses)
