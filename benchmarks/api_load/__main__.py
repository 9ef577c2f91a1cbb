"""API load benchmark: gunicorn + Postgres + Redis, 10,000 seeded adapters, bounded load.

    .venv/bin/python -m benchmarks.api_load [--adapters 10000] [--requests 4000] [--seconds 20]

Prints requests/s and p50/p99 for resolve, list and search, and for a trivial Django view in
the same server and run (the framework's floor), with the ratios and the targets.
"""

from __future__ import annotations

import argparse
import os
import random
import subprocess
import sys
import time
import urllib.parse
import urllib.request
from pathlib import Path

from .load import drive

ROOT = Path(__file__).resolve().parents[2]
DB_NAME = "bench_adapterhub"
PG_URL = "postgres://postgres@127.0.0.1:5432"


def recreate_database():
    import psycopg

    with psycopg.connect(f"{PG_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB_NAME} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB_NAME}")


def prepare(n_adapters: int) -> list[str]:
    import django

    django.setup()
    from django.core.cache import cache
    from django.core.management import call_command

    from .seed import seed

    call_command("migrate", verbosity=0)
    cache.clear()
    started = time.monotonic()
    identifiers = seed(n_adapters)
    print(f"seeded {n_adapters} adapters in {time.monotonic() - started:.1f}s", file=sys.stderr)
    return identifiers


def start_server(port: int, workers: int, threads: int) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "gunicorn", "hubsite.wsgi:application", "--bind", f"127.0.0.1:{port}",
           "--workers", str(workers), "--threads", str(threads), "--worker-class", "gthread",
           "--keep-alive", "30", "--log-level", "warning"]
    proc = subprocess.Popen(cmd, cwd=ROOT, env=os.environ.copy())
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/bench/floor", timeout=2).read()
            return proc
        except OSError:
            time.sleep(0.3)
    proc.kill()
    raise SystemExit("gunicorn did not start")


def scenarios(identifiers: list[str], rng: random.Random) -> dict[str, list[str]]:
    sample = rng.sample(identifiers, min(500, len(identifiers)))
    words = ["sentiment", "movie review", "legal", "question answering", "multilingual german", "toxicity",
             "paraphrase", "biomedical", "sarcasm tweet", "emotion", "finance news", "grammar"]
    q = urllib.parse.quote
    return {
        "floor": ["/bench/floor"],
        "resolve": [f"/api/v1/resolve?id={q(ident)}" for ident in sample],
        "list": [f"/api/v1/adapters?sort={s}&page={p}" for s in ("downloads", "newest") for p in range(1, 6)]
        + [f"/api/v1/adapters?task=task-{t}&sort=downloads" for t in range(20)],
        "search": [f"/api/v1/adapters?q={q(w)}" for w in words]
        + [f"/api/v1/adapters?q={q(w)}&model_name=roberta-base" for w in words],
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=4000, help="at most this many requests per scenario")
    parser.add_argument("--seconds", type=float, default=20.0, help="at most this long per scenario")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8791)
    args = parser.parse_args(argv)

    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.api_load.settings"
    os.environ["DATABASE_URL"] = f"{PG_URL}/{DB_NAME}"
    os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / "bench"))
    recreate_database()
    identifiers = prepare(args.adapters)
    server = start_server(args.port, args.workers, args.threads)
    try:
        rng = random.Random(1)
        results = {}
        for name, paths in scenarios(identifiers, rng).items():
            drive(name, args.port, paths, concurrency=args.concurrency, total_requests=len(paths),
                  max_seconds=args.seconds)  # warm-up: every distinct path once
            results[name] = drive(name, args.port, paths, concurrency=args.concurrency,
                                  total_requests=args.requests, max_seconds=args.seconds)
    finally:
        server.terminate()
        server.wait(10)
    return report(results)


def report(results) -> int:
    floor = results["floor"]
    print(f"\n{'scenario':<10}{'requests':>10}{'errors':>8}{'req/s':>10}{'p50 ms':>9}{'p99 ms':>9}{'vs floor':>10}")
    for r in results.values():
        print(f"{r.name:<10}{r.requests:>10}{r.errors:>8}{r.rps:>10.0f}{r.p50:>9.2f}{r.p99:>9.2f}"
              f"{r.rps / floor.rps:>9.2f}x")
    resolve, search = results["resolve"], results["search"]
    checks = [
        ("resolve req/s >= 0.8x floor", resolve.rps / floor.rps >= 0.8, f"{resolve.rps / floor.rps:.2f}x"),
        ("resolve p99 < 50 ms", resolve.p99 < 50, f"{resolve.p99:.1f} ms"),
        ("search p99 < 100 ms", search.p99 < 100, f"{search.p99:.1f} ms"),
        ("no errors", all(r.errors == 0 for r in results.values()), ""),
    ]
    print()
    for label, ok, value in checks:
        print(f"{'PASS' if ok else 'FAIL'}  {label}  {value}")
    return 0 if all(ok for _, ok, _ in checks) else 1


if __name__ == "__main__":
    sys.exit(main())
