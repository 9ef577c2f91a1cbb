"""The load test: resolve and search at a steady rate while uploads stream, bounded in time and count.

Readers are worker processes that each send their share of a kind's rate on a fixed schedule
(request k at start + k / rate) over a few connections; a request is never sent early, and
one sent more than LATE_MS after its time is counted as late, so a server (or a machine) that
falls behind shows up. Uploads are real multipart
uploads of new versions with an upload token, one after another from a thread of this process.
"""

from __future__ import annotations

import http.client
import multiprocessing as mp
import threading
import time
from dataclasses import dataclass, field

from benchmarks.api_load.load import percentile

from . import client
from .hub import ORG, SUBTASKS, TASK
from .payloads import valid_files

LATE_MS = 100.0


@dataclass
class KindStats:
    kind: str
    sent: int = 0
    errors: int = 0
    server_errors: int = 0
    late: int = 0
    seconds: float = 0.0
    latencies_ms: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, status: int, ms: float, expected: int | None = None) -> None:
        """Count one answer; an error is no answer, a 4xx/5xx, or not the ``expected`` status."""
        self.sent += 1
        self.latencies_ms.append(ms)
        self.statuses[status] = self.statuses.get(status, 0) + 1
        if status == client.NO_ANSWER or status >= 400 or (expected is not None and status != expected):
            self.errors += 1
        if status >= 500:
            self.server_errors += 1

    def merge(self, other: KindStats) -> None:
        self.sent += other.sent
        self.errors += other.errors
        self.server_errors += other.server_errors
        self.late += other.late
        self.seconds = max(self.seconds, other.seconds)
        self.latencies_ms += other.latencies_ms
        for code, count in other.statuses.items():
            self.statuses[code] = self.statuses.get(code, 0) + count

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds > 0 else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 0.5)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99)


def _lane(stats: KindStats, lock: threading.Lock, port: int, paths: list[str], slots: range, rate: float,
          start: float) -> None:
    """Send the requests of ``slots`` (request k due at start + k / rate) over one connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    for k in slots:
        due = start + k / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        late = (now - due) * 1000 > LATE_MS
        try:
            answer = client.get(conn, paths[k % len(paths)])
            status, ms = answer.status, answer.ms
        except (OSError, http.client.HTTPException):
            status, ms = client.NO_ANSWER, 0.0
            conn.close()
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        with lock:
            stats.add(status, ms)
            stats.late += late
    conn.close()


def _reader(kind: str, port: int, paths: list[str], rate: float, start: float, seconds: float, out,
            lanes: int = 4) -> None:
    """One process: ``rate`` requests per second for ``seconds``, spread over ``lanes`` connections
    so that one slow answer does not hold back the requests due after it."""
    stats, lock = KindStats(kind), threading.Lock()
    total = int(rate * seconds)
    threads = [threading.Thread(target=_lane, args=(stats, lock, port, paths, range(t, total, lanes), rate, start))
               for t in range(lanes)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stats.seconds = time.monotonic() - start
    out.put(stats)


def _uploader(hub, seconds: float, rate: float, max_uploads: int, stats: KindStats, stop: threading.Event) -> None:
    start = time.monotonic()
    for i in range(max_uploads):
        due = start + i / rate
        if due - start >= seconds or stop.is_set():
            break
        time.sleep(max(0.0, due - time.monotonic()))
        fields = {"identifier": f"{TASK}/{SUBTASKS[i % len(SUBTASKS)]}@{ORG}", "model_name": "bert-base-uncased",
                  "version": f"load-{i}"}
        answer = client.upload(hub.port, hub.token, fields, valid_files(10_000 + i))
        stats.add(answer.status, answer.ms, expected=201)  # every upload is a new version
    stats.seconds = time.monotonic() - start


def run_load(hub, paths: dict[str, list[str]], rates: dict[str, float], seconds: float,
             upload_rate: float, max_uploads: int, processes_per_kind: int = 2) -> dict[str, KindStats]:
    """Readers for each kind in ``paths`` at ``rates[kind]`` req/s, plus the uploader, for ``seconds``."""
    ctx = mp.get_context("fork")
    out = ctx.Queue()
    start = time.monotonic() + 0.5
    procs = []
    for kind, urls in paths.items():
        share = rates[kind] / processes_per_kind
        for w in range(processes_per_kind):
            mine = urls[w::processes_per_kind] or urls
            procs.append(ctx.Process(target=_reader, args=(kind, hub.port, mine, share, start, seconds, out)))
    for p in procs:
        p.start()
    uploads = KindStats("upload")
    stop = threading.Event()
    thread = threading.Thread(target=_uploader, args=(hub, seconds, upload_rate, max_uploads, uploads, stop))
    thread.start()
    results = {kind: KindStats(kind) for kind in paths}
    try:
        for _ in procs:
            part = out.get(timeout=seconds + 120)
            results[part.kind].merge(part)
    finally:
        stop.set()
        thread.join()
        for p in procs:
            p.join(10)
    results["upload"] = uploads
    return results
