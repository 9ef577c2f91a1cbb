"""Download benchmark against a live hub whose weights store is a moto S3 server on 127.0.0.1.

    .venv/bin/python -m benchmarks.download                          # 1, 10 and 100 MB adapters
    .venv/bin/python -m benchmarks.download --sizes 1 --rounds 2     # a quick look
    .venv/bin/python -m benchmarks.download --save run.json
    .venv/bin/python -m benchmarks.download --link-mbps 200     # across a 200 Mbit/s link

For each size: a BERT backbone built from a config (hidden x layers chosen so that a
seq_bn[reduction_factor=1] adapter has that size), its adapter saved without a head, uploaded
through the hub's upload endpoint and marked valid as the validator would. Then, in one run:

1. raw, cold, raw, cold, ..., raw: a cold ``adapters_client.download`` (fresh HubClient, fresh empty
   cache: resolve with presigned S3 URLs, the files fetched at once from S3, sha256 and flushes
   overlapped with the transfer, fsync, snapshot, refs) against a raw ``requests`` GET of the same S3 object streamed to a file (no hashing), in
   MB/s of the weights file; each cold round is compared with the mean of the raw rounds around it.
2. plain, warm, plain, warm, ..., plain: ``model.load_adapter(identifier)`` with ADAPTERS_OFFLINE=1
   from a cache that holds it, against ``safetensors.torch.load_file`` of the cached file +
   ``add_adapter`` + copying the tensors into the adapter's parameters; the adapter is deleted
   after every round.

With ``--link-mbps N`` both sides cross the same rate-limited link (``link.py``: a proxy process in
front of the hub and one in front of the S3 server, N Mbit/s each way, no added latency), as a user's
download does; without it they run over loopback on this machine.

Prints the median ratio with min and max per size and the targets (cold >= 0.9x raw from 10 MB,
warm <= 1.1x plain). Exit status: 0 targets met, 1 a target missed or a sanity check failed,
2 the run failed or ran out of time. Makes its own Postgres database, Redis database (9),
moto server, gunicorn and temporary directories, and removes them all at the end.
"""

from __future__ import annotations

import argparse
import gc
import os
import shutil
import signal
import sys
import tempfile
import time
import traceback
from datetime import datetime, timezone
from pathlib import Path

from . import report
from .adapters import SHAPES

REDIS_URL = os.environ.get("BENCH_DOWNLOAD_REDIS_URL", "redis://127.0.0.1:6379/9")


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", default="1,10,100", help=f"adapter sizes in MB, among {sorted(SHAPES)}")
    parser.add_argument("--rounds", type=int, default=None,
                        help="measured rounds of each kind per size (default: 5 below 100 MB, 3 at 100 MB)")
    parser.add_argument("--port", type=int, default=8794)
    parser.add_argument("--db-name", default="bench_download")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--max-seconds", type=float, default=1800.0, help="bound on the whole run")
    parser.add_argument("--link-mbps", type=float, default=None,
                        help="put a link of this many Mbit/s (each way) between the client and both servers")
    parser.add_argument("--save", help="write the figures as JSON to this file")
    args = parser.parse_args(argv)
    try:
        args.sizes = [int(s) for s in args.sizes.split(",") if s.strip()]
    except ValueError:
        parser.error("--sizes: comma-separated integers")
    if not args.sizes or any(s not in SHAPES for s in args.sizes):
        parser.error(f"--sizes: choose among {sorted(SHAPES)}")
    if args.link_mbps is not None and args.link_mbps <= 0:
        parser.error("--link-mbps: a positive number")
    if args.rounds is not None and args.rounds < 1:
        parser.error("--rounds: at least 1")
    return args


def _terminate(signum, frame):  # noqa: ARG001 - a SIGTERM still runs the clean-up in ``finally``
    raise SystemExit(128 + signum)


def main(argv=None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _terminate)
    os.environ["REDIS_URL"] = REDIS_URL  # the hub's cache, away from the other benchmarks' databases
    from benchmarks.load_soak import hub as hubs

    from . import link
    from .rounds import Deadline, OutOfTime

    links = []

    def s3_front(endpoint: str) -> str:
        proc, url = link.start(endpoint, args.link_mbps)
        links.append(proc)
        return url

    deadline = Deadline(time.monotonic() + args.max_seconds)
    work = Path(tempfile.mkdtemp(prefix="bench-download-"))
    hub = None
    try:
        hub = hubs.prepare_hub(args.port, args.db_name, store="s3", s3_front=s3_front if args.link_mbps else None)
        hubs.start(hub, args.workers, args.threads)
        base_url = f"http://127.0.0.1:{hub.port}"
        if args.link_mbps:
            proc, base_url = link.start(base_url, args.link_mbps)
            links.append(proc)
        print(f"link: {f'{args.link_mbps:g} Mbit/s each way' if args.link_mbps else 'none (loopback)'}", flush=True)
        results = {size: measure(size, i, hub, base_url, work, args, deadline) for i, size in enumerate(args.sizes)}
    except OutOfTime as exc:
        print(f"\nOUT OF TIME: {exc} (--max-seconds {args.max_seconds:.0f})", file=sys.stderr)
        return 2
    except Exception:  # noqa: BLE001 - reported with its traceback; the clean-up below still runs
        traceback.print_exc()
        return 2
    finally:
        for proc in links:
            link.stop(proc)
        if hub is not None:
            hubs.stop(hub)
            _clear_cache()
        shutil.rmtree(work, ignore_errors=True)
    rows = report.checks(results)
    print()
    print(report.download_table(results, args.link_mbps))
    print()
    print(report.load_table(results))
    print()
    print(report.breakdown_table(results))
    print()
    for label, ok, measured in rows:
        print(f"  [{'PASS' if ok else 'FAIL'}] {label}: {measured}")
    passed = all(ok for _, ok, _ in rows)
    print(f"\nVERDICT: {'PASS' if passed else 'FAIL'}")
    if args.save:
        meta = {"date": datetime.now(timezone.utc).isoformat(timespec="seconds"), "cpus": os.cpu_count(),
                "sizes": args.sizes, "workers": args.workers, "threads": args.threads, "link_mbps": args.link_mbps}
        report.save(args.save, report.to_json(results, meta, rows))
    return 0 if passed else 1


def _clear_cache() -> None:
    """Empty the hub's Redis cache database (its answers are of no use once the database is gone)."""
    try:
        from django.core.cache import cache

        cache.clear()
    except Exception as exc:  # noqa: BLE001 - the run's figures stand; say what was left
        print(f"could not clear the hub's cache at {REDIS_URL}: {exc}", file=sys.stderr)


def measure(size: int, index: int, hub, base_url: str, work: Path, args, deadline) -> dict:
    from . import adapters
    from .rounds import breakdown, cold_download, download_rounds, load_rounds

    hidden, layers = SHAPES[size]
    rounds = args.rounds or (3 if size >= 100 else 5)
    deadline.check(f"building the {size} MB adapter")
    model = adapters.build_model(hidden, layers, f"bench/bert-h{hidden}-l{layers}")
    adapter = adapters.save(model, size, hidden, layers, work / f"adapter-{size}", index)
    adapters.upload(hub, adapter)
    adapters.mark_valid(adapter)
    print(f"{size} MB: {adapter.identifier} ({adapter.model_name}, {adapter.weights_bytes} bytes) uploaded and valid;"
          f" {rounds} rounds", flush=True)
    size_dir = work / f"rounds-{size}"
    size_dir.mkdir()
    # untimed: fills the cache of the warm rounds, and warms the client's imports and the hub's workers
    warm_cache = size_dir / "warm-cache"
    cold_download(base_url, adapter.identifier, warm_cache, timeout=120.0)
    download = download_rounds(adapter, base_url, size_dir, rounds, deadline)
    parts = breakdown(adapter, base_url, size_dir)
    print(f"{size} MB: downloads done", flush=True)
    load = load_rounds(model, adapter, warm_cache, rounds, deadline)
    print(f"{size} MB: loads done", flush=True)
    del model
    gc.collect()
    shutil.rmtree(size_dir, ignore_errors=True)
    return {"size_mb": size, "hidden": hidden, "layers": layers, "identifier": adapter.identifier,
            "model_name": adapter.model_name, "weights_bytes": adapter.weights_bytes,
            "download": download.as_dict(), "load": load.as_dict(), "breakdown": parts}


if __name__ == "__main__":
    sys.exit(main())
