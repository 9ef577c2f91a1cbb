"""Train the demo adapters and the full fine-tuning baseline on MiniLM; print and save the comparison table.

    python -m demo.train [--methods seq_bn,lora,double_seq_bn,full] [--subset N] [--epochs E]
                         [--out demo/adapters] [--lr METHOD=RATE ...]

Each adapter (with its classification head) is saved to ``<out>/<method>/``; full fine-tuning is only
measured (its weights are the whole backbone). The table goes to stdout and ``<out>/results.json``.
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Optional

import torch

from . import data
from .training import (
    ADAPTER_NAME, DEFAULT_LR, METHODS, PUBLIC_MODEL_NAME, Batches, load_tokenizer, run_method,
)

DEFAULT_OUT = Path("demo") / "adapters"  # relative: run from the repository root, as `python -m demo.train`
RESULTS_FILE = "results.json"


def _methods(text: str) -> list:
    methods = [m.strip() for m in text.split(",") if m.strip()]
    unknown = [m for m in methods if m not in METHODS]
    if unknown or not methods:
        raise argparse.ArgumentTypeError(f"unknown method(s) {unknown}; choose from {', '.join(METHODS)}")
    return methods


def _learning_rates(pairs: Optional[list]) -> dict:
    rates = dict(DEFAULT_LR)
    for pair in pairs or []:
        method, _, value = pair.partition("=")
        if method not in METHODS or not value:
            raise argparse.ArgumentTypeError(f"--lr takes METHOD=RATE with METHOD in {METHODS}, got {pair!r}")
        rates[method] = float(value)
    return rates


def parse_args(argv: Optional[list] = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m demo.train", description=__doc__.splitlines()[0])
    parser.add_argument("--methods", type=_methods, default=list(METHODS), help="comma-separated (default: all)")
    parser.add_argument("--subset", type=int, default=None, help="train on the first N training examples")
    parser.add_argument("--eval-subset", type=int, default=None, help="measure on the first N held-out examples")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--max-length", type=int, default=64)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--lr", action="append", metavar="METHOD=RATE", help="override a learning rate")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    try:
        args.lr = _learning_rates(args.lr)
    except argparse.ArgumentTypeError as exc:
        parser.error(str(exc))
    if args.epochs < 1 or args.batch_size < 1:
        parser.error("--epochs and --batch-size must be at least 1")
    return args


def human_bytes(size: int) -> str:
    for unit in ("B", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} B"  # pragma: no cover - the loop always returns


def format_table(rows: list) -> str:
    """The comparison table (rows as written to results.json)."""
    header = f"{'method':<14} {'trainable params':>17} {'% backbone':>10} {'file size':>10} " \
             f"{'accuracy':>9} {'train time':>11}"
    lines = [header, "-" * len(header)]
    for row in rows:
        lines.append(f"{row['method']:<14} {row['trainable_params']:>17,} {row['trainable_pct']:>9.2f}% "
                     f"{human_bytes(row['file_bytes']):>10} {100 * row['accuracy']:>8.2f}% "
                     f"{row['train_seconds']:>10.0f}s")
    return "\n".join(lines)


def run(args: argparse.Namespace, keep_models: Optional[dict] = None) -> dict:
    """Train every method in ``args.methods`` one after the other; returns the results document.

    ``keep_models`` (a dict) receives each trained model by method; otherwise each is dropped when measured."""
    torch.set_num_threads(args.threads)
    started = time.perf_counter()
    parts = data.demo_split()
    train_examples = data.take(parts.train, args.subset)
    held_out = data.take(parts.held_out, args.eval_subset)
    tokenizer = load_tokenizer()
    train_batches = Batches(tokenizer, train_examples, args.batch_size, args.max_length, True, args.seed)
    eval_batches = Batches(tokenizer, held_out, 64, args.max_length, False, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    rows = []
    for method in args.methods:
        result, model = run_method(method, train_batches, eval_batches, args.epochs, args.lr[method], args.out,
                                   args.seed)
        if keep_models is not None:
            keep_models[method] = model
        del model
        rows.append(result.as_dict())
        print(f"{method}: held-out accuracy {100 * result.accuracy:.2f}% in {result.train_seconds:.0f}s", flush=True)
    return {
        "backbone": PUBLIC_MODEL_NAME, "adapter_name": ADAPTER_NAME, "labels": list(data.LABELS),
        "data": {"corpus": data.CORPUS_FILE, "split_seed": data.SPLIT_SEED,
                 "held_out_fraction": data.HELD_OUT_FRACTION, "split": parts.sizes(),
                 "train_used": len(train_examples), "held_out_used": len(held_out)},
        "settings": {"epochs": args.epochs, "batch_size": args.batch_size, "max_length": args.max_length,
                     "seed": args.seed, "threads": args.threads, "lr": {m: args.lr[m] for m in args.methods}},
        "environment": {"torch": torch.__version__, "python": platform.python_version(),
                        "machine": platform.machine(), "finished": datetime.now(timezone.utc).isoformat()},
        "wall_seconds": round(time.perf_counter() - started, 1),
        "rows": rows,
    }


def main(argv: Optional[list] = None, keep_models: Optional[dict] = None) -> int:
    args = parse_args(argv)
    results = run(args, keep_models)
    table = format_table(results["rows"])
    print(table)
    print(f"wall time {results['wall_seconds']:.0f}s; {results['data']['train_used']} training and "
          f"{results['data']['held_out_used']} held-out examples")
    path = args.out / RESULTS_FILE
    path.write_text(json.dumps(results, indent=2) + "\n", encoding="utf-8")
    print(f"results written to {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
