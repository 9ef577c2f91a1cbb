"""The upload soak: 200 uploads of known outcome, then the store's invariants.

Phases (default sizes; ``scale`` shrinks them for smoke tests):
  unique      new versions, one after another                              201
  identical   the same bytes again                                        200
  racing      4 identical uploads of a new version at once, per group     one 201, three 200
  versions    2 versions of a new adapter at once, per group              201 + 201
  conflict    an existing version with other bytes                        409 version_exists
  hostile     pickles, bad safetensors, nested/remote-code configs, path names, damaged zips,
              wrong declared digests, 4 at a time                          their status and code
  cut         bodies cut inside a file or inside the last field, or without the closing boundary:
              4xx incomplete_upload, or no answer (the server may just drop a half-closed client)
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

from . import client
from .hub import ORG, SUBTASKS, TASK
from .payloads import hostile, multipart, valid_files


@dataclass
class Expect:
    kind: str
    statuses: tuple[int, ...]
    code: str | None = None


@dataclass
class Outcome:
    expect: Expect
    answer: client.Answer

    @property
    def ok(self) -> bool:
        if self.answer.status not in self.expect.statuses:
            return False
        return self.expect.code is None or self.answer.status == client.NO_ANSWER or \
            self.answer.code == self.expect.code


@dataclass
class SoakRun:
    outcomes: list[Outcome] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self, expect: Expect, answer: client.Answer) -> None:
        with self.lock:
            self.outcomes.append(Outcome(expect, answer))


def _fields(subtask: str, version: str, **extra) -> dict:
    return {"identifier": f"{TASK}/{subtask}@{ORG}", "model_name": "bert-base-uncased", "version": version,
            **extra}


def _upload(hub, run: SoakRun, expect: Expect, fields: dict, files, file_field: str = "files") -> client.Answer:
    answer = client.upload(hub.port, hub.token, fields, files, file_field)
    run.record(expect, answer)
    return answer


def _together(jobs: list) -> None:
    """Run the callables at once (a barrier releases them together)."""
    barrier = threading.Barrier(len(jobs))

    def go(job):
        barrier.wait(timeout=30)
        job()

    with ThreadPoolExecutor(len(jobs)) as pool:
        list(pool.map(go, jobs))


def phase_unique_identical(hub, run: SoakRun, n_unique: int, n_identical: int) -> None:
    for i in range(n_unique):
        _upload(hub, run, Expect("unique", (201,)), _fields(SUBTASKS[i % 20], str(i)), valid_files(1000 + i))
    for i in range(n_identical):
        j = i % max(1, n_unique)
        _upload(hub, run, Expect("identical", (200,)), _fields(SUBTASKS[j % 20], str(j)), valid_files(1000 + j))
    for i in range(min(6, n_unique)):
        _upload(hub, run, Expect("conflict", (409,), "version_exists"), _fields(SUBTASKS[i % 20], str(i)),
                valid_files(5000 + i))


def phase_racing(hub, run: SoakRun, groups: int, width: int = 4) -> None:
    """Per group: ``width`` identical uploads of a new version at once; exactly one creates it."""
    for g in range(groups):
        fields, files = _fields(SUBTASKS[20 + g % 10], f"race-{g}"), valid_files(2000 + g)
        answers: list[client.Answer] = []
        _together([lambda: answers.append(client.upload(hub.port, hub.token, fields, files))] * width)
        for answer in answers:
            run.record(Expect("racing", (200, 201)), answer)
        statuses = sorted(a.status for a in answers)
        if statuses != [200] * (width - 1) + [201]:
            run.violations.append(f"racing group {g}: answers {statuses}, expected one 201 and {width - 1} x 200")


def phase_versions(hub, run: SoakRun, groups: int) -> None:
    for g in range(groups):
        subtask = SUBTASKS[30 + g % 10]
        jobs = [lambda k=k, g=g, subtask=subtask: _upload(
            hub, run, Expect("versions", (201,)), _fields(subtask, f"v{g}-{k}"), valid_files(3000 + 2 * g + k))
            for k in range(2)]
        _together(jobs)


def phase_hostile(hub, run: SoakRun, rounds: int) -> None:
    jobs = []
    for r in range(rounds):
        for kind, files, file_field, status, code in hostile(4000 + r):
            jobs.append(lambda kind=kind, files=files, ff=file_field, s=status, c=code, r=r: _upload(
                hub, run, Expect(kind, (s,), c), _fields(SUBTASKS[r % 20], f"h-{r}"), files, ff))
        files = valid_files(4500 + r)
        wrong = {name: hashlib.sha256(content + b"x").hexdigest() for name, content in files}
        jobs.append(lambda r=r, files=files, wrong=wrong: _upload(
            hub, run, Expect("digest-mismatch", (400,), "digest_mismatch"),
            _fields(SUBTASKS[r % 20], f"d-{r}", sha256=json.dumps(wrong)), files))
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: job(), jobs))


def _cut_bodies(r: int) -> list[tuple[str, bytes, str, int]]:
    """(kind, body, content type, bytes to send) of requests that do not arrive whole."""
    files = valid_files(6000 + r)
    body, ctype = multipart(_fields(SUBTASKS[r % 20], f"cut-{r}"), files)
    inside_file = body.index(files[1][1]) + len(files[1][1]) // 2
    tail = f"2024{r:04d}"
    late, late_type = _multipart_version_last(SUBTASKS[r % 20], tail, files)
    inside_field = late.rindex(tail.encode()) + 2  # the version arrives as "20"
    unclosed = body[: body.rindex(b"--" + ctype.split("boundary=")[1].encode())]
    return [("cut-inside-file", body, ctype, inside_file), ("cut-inside-last-field", late, late_type, inside_field),
            ("no-closing-boundary", unclosed, ctype, len(unclosed))]


def _multipart_version_last(subtask: str, version: str, files) -> tuple[bytes, str]:
    """The files first and the ``version`` field last (as some clients order the form)."""
    body, ctype = multipart({k: v for k, v in _fields(subtask, version).items() if k != "version"}, files)
    boundary = ctype.split("boundary=")[1]
    closing = f"--{boundary}--\r\n".encode()
    field_part = f'--{boundary}\r\nContent-Disposition: form-data; name="version"\r\n\r\n{version}\r\n'.encode()
    return body[: -len(closing)] + field_part + closing, ctype


def phase_cut(hub, run: SoakRun, rounds: int) -> None:
    jobs = []
    for r in range(rounds):
        for kind, body, ctype, send in _cut_bodies(r):
            def job(kind=kind, body=body, ctype=ctype, send=send):
                answer = client.upload_cut(hub.port, hub.token, body, ctype, send)
                run.record(Expect(kind, (400, client.NO_ANSWER), "incomplete_upload"), answer)
            jobs.append(job)
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(lambda job: job(), jobs))


def plan_sizes(scale: float = 1.0) -> dict[str, int]:
    """Phase sizes; at scale 1: 50 + 32 + 6 + 8*4 + 6*2 + 5*10 + 6*3 = 200 uploads."""
    def n(value: int) -> int:
        return max(1, round(value * scale))

    return {"unique": n(50), "identical": n(32), "racing": n(8), "versions": n(6), "hostile": n(5), "cut": n(6)}


def run_soak(hub, scale: float = 1.0) -> SoakRun:
    sizes = plan_sizes(scale)
    run = SoakRun()
    phase_unique_identical(hub, run, sizes["unique"], sizes["identical"])
    phase_racing(hub, run, sizes["racing"])
    phase_versions(hub, run, sizes["versions"])
    phase_hostile(hub, run, sizes["hostile"])
    phase_cut(hub, run, sizes["cut"])
    return run


def tally(run: SoakRun) -> dict[str, Counter]:
    """Per kind: how many answers had each status."""
    kinds: dict[str, Counter] = {}
    for outcome in run.outcomes:
        kinds.setdefault(outcome.expect.kind, Counter())[outcome.answer.status] += 1
    return kinds
