"""API load benchmark: gunicorn + Postgres + Redis, 10,000 seeded adapters, bounded load.

    .venv/bin/python -m benchmarks.api_load [--adapters 10000] [--rounds 7] [--round-seconds 3]
        [--save run.json] [--compare previous.json]

The floor (a trivial Django view in the same server) and each scenario (resolve, list,
search) run in alternating short rounds: floor, resolve, floor, list, floor, search, floor,
... with the scenario order rotating each round. For each scenario it prints the median ratio
of its request rate to the floor's (each round against the floor rounds on either side), with
the min and max over the rounds, plus its median req/s and p50/p99 over all its requests.
With --compare, it also says whether this run and a saved one agree within their spread.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import time
import urllib.parse

from . import report
from .load import drive
from .rounds import FLOOR, plan, run_rounds
from .server import ROOT, drop_database, recreate_database, start_server, stop_server

DB_NAME = "bench_adapterhub"
SCENARIOS = ["resolve", "list", "search"]


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


def scenarios(identifiers: list[str], rng: random.Random) -> dict[str, list[str]]:
    sample = rng.sample(identifiers, min(500, len(identifiers)))
    words = ["sentiment", "movie review", "legal", "question answering", "multilingual german", "toxicity",
             "paraphrase", "biomedical", "sarcasm tweet", "emotion", "finance news", "grammar"]
    q = urllib.parse.quote
    return {
        FLOOR: ["/bench/floor"],
        "resolve": [f"/api/v1/resolve?id={q(ident)}" for ident in sample],
        "list": [f"/api/v1/adapters?sort={s}&page={p}" for s in ("downloads", "newest") for p in range(1, 6)]
        + [f"/api/v1/adapters?task=task-{t}&sort=downloads" for t in range(20)],
        "search": [f"/api/v1/adapters?q={q(w)}" for w in words]
        + [f"/api/v1/adapters?q={q(w)}&model_name=roberta-base" for w in words],
    }


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--adapters", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=7, help="rounds per scenario (at least 5)")
    parser.add_argument("--round-seconds", type=float, default=3.0, help="at most this long per round")
    parser.add_argument("--round-requests", type=int, default=20_000, help="at most this many requests per round")
    parser.add_argument("--concurrency", type=int, default=4)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--port", type=int, default=8791)
    parser.add_argument("--cache-seconds", type=int, default=3600,
                        help="HUB_CACHE_SECONDS of the server (production: 30; see settings.py)")
    parser.add_argument("--db-name", default=DB_NAME)
    parser.add_argument("--keep-db", action="store_true", help="leave the benchmark database in place")
    parser.add_argument("--save", help="write the figures as JSON to this file")
    parser.add_argument("--compare", help="a JSON file saved by an earlier run: check that both agree")
    args = parser.parse_args(argv)
    if args.rounds < 5:
        parser.error("--rounds must be at least 5: a median with a spread needs them")
    return args


def measure(args, paths: dict[str, list[str]]) -> tuple[dict, dict]:
    """The cold pass (every path once on an empty cache: the uncached cost), then the rounds."""
    cold = {name: drive(name, args.port, urls, concurrency=args.concurrency, total_requests=len(urls),
                        max_seconds=120) for name, urls in paths.items()}

    def run_one(name: str, index: int):
        return drive(name, args.port, paths[name], concurrency=args.concurrency,
                     total_requests=args.round_requests, max_seconds=args.round_seconds, offset=index * 17)

    return run_rounds(plan(SCENARIOS, args.rounds), run_one), cold


def main(argv=None) -> int:
    args = parse_args(argv)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.api_load.settings"
    os.environ["DATABASE_URL"] = recreate_database(args.db_name)
    os.environ.setdefault("HUB_VAR_DIR", str(ROOT / "var" / "bench"))
    os.environ["HUB_CACHE_SECONDS"] = str(args.cache_seconds)
    try:
        identifiers = prepare(args.adapters)
        from django.db import connections

        connections.close_all()
        server = start_server(args.port, workers=args.workers, threads=args.threads, ready_path="/bench/floor")
        try:
            summaries, cold = measure(args, scenarios(identifiers, random.Random(1)))
        finally:
            stop_server(server)
    finally:
        if not args.keep_db:
            drop_database(args.db_name)
    return emit(args, summaries, cold)


def emit(args, summaries, cold) -> int:
    print("\n" + report.table(summaries))
    print("\ncold pass (each path once, empty cache): " + "; ".join(
        f"{r.name} {r.requests} req p50 {r.p50:.1f} ms p99 {r.p99:.1f} ms" for r in cold.values()) + "\n")
    results = report.checks(summaries)
    for label, ok, value in results:
        print(f"{'PASS' if ok else 'FAIL'}  {label}  {value}")
    meta = {"adapters": args.adapters, "rounds": args.rounds, "round_seconds": args.round_seconds,
            "concurrency": args.concurrency, "workers": args.workers, "threads": args.threads,
            "cache_seconds": args.cache_seconds,
            "cold": {r.name: {"requests": r.requests, "errors": r.errors, "p50_ms": r.p50, "p99_ms": r.p99}
                     for r in cold.values()},
            "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    data = report.to_json(summaries, meta)
    if args.save:
        report.save(args.save, data)
    agreed = True
    if args.compare:
        import json

        rows = report.agreement(data, json.loads(open(args.compare).read()))
        print()
        for name, ok, text in rows:
            print(f"{'AGREE' if ok else 'DIFFER'}  {name}  {text}")
        agreed = all(ok for _, ok, _ in rows)
    return 0 if all(ok for _, ok, _ in results) and agreed else 1


if __name__ == "__main__":
    sys.exit(main())
