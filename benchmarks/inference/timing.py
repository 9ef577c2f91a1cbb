"""Interleaved timing: every configuration runs once per round, so machine noise hits all alike."""

from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def measure(runners: dict[str, Callable], warmup: int, repeats: int, log=print) -> dict[str, dict]:
    """Median wall time (ms) per runner; a runner that raises is reported and dropped."""
    samples: dict[str, list[float]] = {name: [] for name in runners}
    failures: dict[str, str] = {}
    with torch.inference_mode():
        for round_index in range(warmup + repeats):
            for name, run in runners.items():
                if name in failures:
                    continue
                try:
                    start = time.perf_counter()
                    run()
                    elapsed = (time.perf_counter() - start) * 1000
                except Exception as exc:  # noqa: BLE001 - reported per configuration
                    failures[name] = f"failed while running: {type(exc).__name__}: {exc}"
                    continue
                if round_index >= warmup:
                    samples[name].append(elapsed)
            log(f"  round {round_index + 1}/{warmup + repeats} done")
    results = {}
    for name in runners:
        if name in failures:
            results[name] = {"status": failures[name]}
        else:
            results[name] = {"status": "ok", "median_ms": statistics.median(samples[name]),
                             "min_ms": min(samples[name]), "samples_ms": samples[name]}
    return results
