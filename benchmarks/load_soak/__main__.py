"""Load test and upload soak against a live hub (gunicorn, Postgres, Redis) on 127.0.0.1.

    .venv/bin/python -m benchmarks.load_soak load [--seconds 60] [--resolve-rate 40] [--search-rate 10]
        [--upload-rate 2] [--adapters 2000]
    .venv/bin/python -m benchmarks.load_soak soak [--store fs|s3] [--scale 1.0]

load: resolve and search at a steady rate while uploads stream; prints per kind the requests,
errors (goal 0), 5xx (goal 0), late sends, p50 and p99; exits 1 when any error or 5xx occurred.
soak: 200 uploads of known outcome (identical, concurrent, hostile, cut short), then checks that
every stored object is referenced by a VersionFile with its sha256, that every VersionFile's
object exists and hashes to its sha256, that no temporary upload file remains, and that the
answers and the number of versions are as expected; prints a verdict, exits 1 on a violation.
Each run makes its own database and directories and removes them afterwards (unless --keep).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
import urllib.parse

from . import hub as hubs


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("mode", choices=["load", "soak"])
    parser.add_argument("--port", type=int, default=8793)
    parser.add_argument("--db-name", default="bench_load_soak")
    parser.add_argument("--store", choices=["fs", "s3"], default="fs", help="the weights store (s3: moto server)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--keep", action="store_true", help="keep the database and directories")
    parser.add_argument("--seconds", type=float, default=60.0, help="load: how long")
    parser.add_argument("--resolve-rate", type=float, default=40.0, help="load: resolve requests per second")
    parser.add_argument("--search-rate", type=float, default=10.0, help="load: search requests per second")
    parser.add_argument("--upload-rate", type=float, default=2.0, help="load: uploads per second")
    parser.add_argument("--max-uploads", type=int, default=300, help="load: at most this many uploads")
    parser.add_argument("--adapters", type=int, default=2000, help="load: seeded adapters to resolve and search")
    parser.add_argument("--scale", type=float, default=1.0, help="soak: phase sizes times this (1.0: 200 uploads)")
    return parser.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    seeded = args.adapters if args.mode == "load" else 0
    hub = hubs.prepare_hub(args.port, args.db_name, args.store, seed_adapters=seeded)
    try:
        hubs.start(hub, args.workers, args.threads)
        return run_load(args, hub) if args.mode == "load" else run_soak(args, hub)
    finally:
        hubs.stop(hub, keep=args.keep)


def _read_paths(hub) -> dict[str, list[str]]:
    q = urllib.parse.quote
    sample = random.Random(2).sample(hub.identifiers, min(300, len(hub.identifiers)))
    words = ["sentiment", "movie review", "legal", "question answering", "toxicity", "paraphrase", "emotion"]
    return {"resolve": [f"/api/v1/resolve?id={q(i)}" for i in sample],
            "search": [f"/api/v1/adapters?q={q(w)}" for w in words]
            + [f"/api/v1/adapters?q={q(w)}&model_name=roberta-base" for w in words]}


def run_load(args, hub) -> int:
    from .load import run_load as drive

    paths = _read_paths(hub)
    started = time.monotonic()
    results = drive(hub, paths, {"resolve": args.resolve_rate, "search": args.search_rate}, args.seconds,
                    args.upload_rate, args.max_uploads)
    print(f"\nload for {time.monotonic() - started:.0f}s against {hub.store} store")
    print(f"{'kind':<9}{'requests':>9}{'req/s':>8}{'errors':>8}{'5xx':>6}{'late':>6}{'p50 ms':>9}{'p99 ms':>9}  statuses")
    for r in results.values():
        codes = ", ".join(f"{k}:{v}" for k, v in sorted(r.statuses.items()))
        print(f"{r.kind:<9}{r.sent:>9}{r.rate:>8.1f}{r.errors:>8}{r.server_errors:>6}{r.late:>6}{r.p50:>9.1f}"
              f"{r.p99:>9.1f}  {codes}")
    bad = sum(r.errors + r.server_errors for r in results.values())
    print(f"\nVERDICT: {'PASS' if bad == 0 else 'FAIL'} (goal: 0 errors, 0 5xx)")
    return 0 if bad == 0 else 1


def run_soak(args, hub) -> int:
    from .audit import audit
    from .soak import run_soak as soak
    from .soak import tally

    started = time.monotonic()
    run = soak(hub, args.scale)
    print(f"\nsoak: {len(run.outcomes)} uploads in {time.monotonic() - started:.0f}s against {hub.store} store")
    for kind, counts in tally(run).items():
        print(f"  {kind:<28}" + ", ".join(f"{status or 'no answer'}: {n}" for status, n in sorted(counts.items())))
    violations = list(run.violations)
    for o in run.outcomes:
        if not o.ok:
            violations.append(f"{o.expect.kind}: got {o.answer.status} {o.answer.code}, expected "
                              f"{o.expect.statuses} {o.expect.code or ''} ({str(o.answer.body)[:160]})")
    created = sum(1 for o in run.outcomes if o.answer.status == 201)
    result = audit(hub)
    if result.versions != created:
        violations.append(f"{result.versions} versions recorded but {created} uploads answered 201")
    violations += result.violations
    totals = {s: sum(1 for o in run.outcomes if o.answer.status == s) for s in (201, 200)}
    refused = sum(1 for o in run.outcomes if 400 <= o.answer.status < 500)
    dropped = sum(1 for o in run.outcomes if o.answer.status == 0)
    fivexx = sum(1 for o in run.outcomes if o.answer.status >= 500)
    print(f"\n201: {totals[201]}  200: {totals[200]}  4xx: {refused}  no answer: {dropped}  5xx: {fivexx}")
    print(f"store: {result.objects} objects, {result.files} file rows, {result.versions} versions; "
          f"temp dir entries: {sum(v.startswith('temporary') for v in result.violations)}")
    for line in violations:
        print(f"VIOLATION: {line}")
    print(f"VERDICT: {'PASS' if not violations else 'FAIL'} ({len(violations)} violations)")
    return 0 if not violations else 1


if __name__ == "__main__":
    sys.exit(main())
