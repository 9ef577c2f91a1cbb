"""Page benchmark: home, search with facets, a leaderboard and an adapter page over N seeded adapters.

    .venv/bin/python -m benchmarks.pages [--adapters 10000] [--requests 200] [--keep]

Seeds a fresh Postgres database (benchmarks.api_load.seed: public adapters, one valid version
each, two files), then renders each page in-process with Django's test client (view, queries
and template; no HTTP server or network in the measurement) for three visitors: anonymous
(served by the page cache), signed in without an organisation (the shared page body), and with
the caches off (every render from scratch, as the first after a write); prints p50/p99 in ms and
the number of SQL queries of a full render. The query count of the search page is measured for a narrow
and a broad query, and of the leaderboard for a small and a large subtask: it must not depend
on the number of results. Not a test: figures, not assertions (exit status 1 only when a query
count grows with the results).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time

from ..api_load.server import drop_database, recreate_database

DB_NAME = "bench_pages_adapterhub"


def _setup(adapters: int) -> None:
    os.environ["DATABASE_URL"] = recreate_database(DB_NAME)
    os.environ["DJANGO_SETTINGS_MODULE"] = "benchmarks.pages.settings"
    import django

    django.setup()
    from django.core.management import call_command

    call_command("migrate", verbosity=0)
    from ..api_load.seed import seed
    from registry.models import AdapterVersion

    started = time.perf_counter()
    seed(adapters)
    AdapterVersion.objects.update(validation_report={
        "verdict": "valid", "adapter": {"head_type": "classification"},
        "checks": [{"name": "weights", "outcome": "passed", "figures": {"tensors": 24, "parameters": 300_000}}],
        "backbone": {"model_name": "bert-base-uncased", "revision": "0" * 40},
    })
    from django.db import connection

    with connection.cursor() as cursor:  # fresh statistics, as autovacuum would have after a bulk load
        cursor.execute("ANALYZE")
    print(f"seeded {adapters} adapters in {time.perf_counter() - started:.1f} s", flush=True)


def _pages() -> dict[str, str]:
    from django.db.models import Count

    from registry.models import Adapter, Subtask

    sizes = Subtask.objects.annotate(n=Count("adapters")).filter(n__gt=0).order_by("n", "pk").select_related("task")
    small, large = sizes.first(), sizes.last()
    adapter = Adapter.objects.order_by("-download_count").first()
    return {
        "home": "/",
        "explore": "/explore/",
        "search (broad, facets)": "/search/?q=",
        "search (text, facets)": "/search/?q=movie+review+sentiment",
        "search (narrow, facets)": f"/search/?q=&task={small.task.slug}&subtask={small.slug}",
        "leaderboard (large)": f"/leaderboards/{large.task.slug}/{large.slug}/",
        "leaderboard (small)": f"/leaderboards/{small.task.slug}/{small.slug}/",
        "adapter page": f"/adapters/{adapter.pk}/",
    }


def _timed(client, url: str, requests: int) -> tuple[float, float]:
    for _ in range(3):
        assert client.get(url).status_code == 200, url
    times = []
    for _ in range(requests):
        started = time.perf_counter()
        client.get(url)
        times.append((time.perf_counter() - started) * 1000)
    times.sort()
    return statistics.median(times), times[min(len(times) - 1, int(len(times) * 0.99))]


def _measure(clients: dict, url: str, requests: int) -> dict:
    """p50/p99 for each kind of visitor, and the queries and size of a full render."""
    from django.conf import settings
    from django.db import connection
    from django.test.utils import CaptureQueriesContext, override_settings

    row = {}
    for kind, client in clients.items():
        if kind == "uncached":
            with override_settings(HUB_CACHE_SECONDS=0):
                row[kind] = _timed(client, url, requests)
                with CaptureQueriesContext(connection) as ctx:
                    response = client.get(url)
            row["queries"] = len(ctx.captured_queries)
            row["kb"] = len(response.content) / 1024
        else:
            assert settings.HUB_CACHE_SECONDS > 0
            row[kind] = _timed(client, url, requests)
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.pages", description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=int, default=10_000)
    parser.add_argument("--requests", type=int, default=200, help="timed requests per page")
    parser.add_argument("--keep", action="store_true", help="keep the benchmark database afterwards")
    args = parser.parse_args(argv)
    _setup(args.adapters)
    from django.contrib.auth import get_user_model
    from django.test import Client

    from hubsite.wsgi import freeze_startup_objects

    freeze_startup_objects()  # as the WSGI module does in every server process
    signed_in = Client()
    signed_in.force_login(get_user_model().objects.create_user("bench-visitor", "bench@example.org", "x" * 16))
    clients = {"anonymous": Client(), "signed in": signed_in, "uncached": Client()}
    rows = {}
    try:
        for name, url in _pages().items():
            rows[name] = _measure(clients, url, args.requests)
    finally:
        from django.db import connections

        connections.close_all()
        if not args.keep:
            drop_database(DB_NAME)
    print(f"\n{args.adapters} adapters, {args.requests} requests per page and visitor (in-process: view + SQL + "
          "template). anonymous: the page cache; signed in (no organisation): the shared page body; uncached: "
          "every render from scratch, as the first one after a write")
    print(f"{'page':<26}{'anonymous p50/p99':>20}{'signed in p50/p99':>20}{'uncached p50/p99':>20}"
          f"{'queries':>9}{'KB':>6}")
    for name, row in rows.items():
        cells = "".join(f"{f'{row[k][0]:.1f} / {row[k][1]:.1f}':>20}" for k in clients)
        print(f"{name:<26}{cells}{row['queries']:>9}{row['kb']:>6.0f}")
    same_search = len({rows[k]["queries"] for k in rows if k.startswith("search")}) == 1
    same_board = rows["leaderboard (large)"]["queries"] == rows["leaderboard (small)"]["queries"]
    print(f"\nqueries of a full render independent of the number of results: search {'yes' if same_search else 'NO'}, "
          f"leaderboard {'yes' if same_board else 'NO'}")
    targets = [k for k in rows if k != "explore"]
    worst = {kind: max(rows[k][kind][1] for k in targets) for kind in ("anonymous", "signed in")}
    print("p99 target (150 ms; home, search, leaderboards, adapter page): "
          + ", ".join(f"{kind} worst {ms:.1f} ms {'met' if ms < 150 else 'MISSED'}" for kind, ms in worst.items()))
    return 0 if same_search and same_board else 1


if __name__ == "__main__":
    sys.exit(main())
