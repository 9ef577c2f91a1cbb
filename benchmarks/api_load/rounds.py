"""Interleaved rounds: floor, scenario, floor, scenario, ..., floor.

The machine's load drifts (other processes, CPU frequency, caches), so a scenario measured
once and compared with a floor measured a minute earlier says little. Here every scenario
round sits between two floor rounds and is compared with their mean; the order of the
scenarios rotates from round to round; each scenario's figure is the median of its per-round
ratios, reported with the min and max over the rounds.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass, field

from .load import Result, percentile

FLOOR = "floor"


def plan(scenarios: list[str], rounds: int) -> list[str]:
    """The run order: a floor round before each scenario round and one at the end."""
    if rounds < 1 or not scenarios:
        raise ValueError("need at least one round and one scenario")
    order: list[str] = []
    for r in range(rounds):
        shift = r % len(scenarios)
        for name in scenarios[shift:] + scenarios[:shift]:
            order += [FLOOR, name]
    order.append(FLOOR)
    return order


@dataclass
class Summary:
    """One scenario over all its rounds."""

    name: str
    ratios: list[float] = field(default_factory=list)
    rates: list[float] = field(default_factory=list)
    latencies_ms: list[float] = field(default_factory=list)
    requests: int = 0
    errors: int = 0
    statuses: dict[int, int] = field(default_factory=dict)

    def add(self, result: Result, ratio: float | None) -> None:
        if ratio is not None:
            self.ratios.append(ratio)
        self.rates.append(result.rps)
        self.latencies_ms.extend(result.latencies_ms)
        self.requests += result.requests
        self.errors += result.errors
        for code, count in result.statuses.items():
            self.statuses[code] = self.statuses.get(code, 0) + count

    @property
    def ratio(self) -> float:
        return statistics.median(self.ratios) if self.ratios else float("nan")

    @property
    def ratio_min(self) -> float:
        return min(self.ratios, default=float("nan"))

    @property
    def ratio_max(self) -> float:
        return max(self.ratios, default=float("nan"))

    @property
    def rps(self) -> float:
        return statistics.median(self.rates) if self.rates else 0.0

    @property
    def p50(self) -> float:
        return percentile(self.latencies_ms, 0.50)

    @property
    def p99(self) -> float:
        return percentile(self.latencies_ms, 0.99)

    def as_dict(self) -> dict:
        return {
            "name": self.name, "rounds": len(self.rates), "requests": self.requests, "errors": self.errors,
            "ratio_median": self.ratio, "ratio_min": self.ratio_min, "ratio_max": self.ratio_max,
            "ratios": self.ratios, "rps_median": self.rps, "p50_ms": self.p50, "p99_ms": self.p99,
            "statuses": {str(k): v for k, v in sorted(self.statuses.items())},
        }


def run_rounds(order: list[str], run_one: Callable[[str, int], Result]) -> dict[str, Summary]:
    """Run ``order`` through ``run_one(name, index)``; each scenario round's ratio is its rate over
    the mean rate of the floor rounds just before and just after it."""
    results = [run_one(name, i) for i, name in enumerate(order)]
    summaries: dict[str, Summary] = {}
    for i, (name, result) in enumerate(zip(order, results)):
        summary = summaries.setdefault(name, Summary(name))
        if name == FLOOR:
            summary.add(result, None)
            continue
        around = [results[j].rps for j in (i - 1, i + 1) if 0 <= j < len(order) and order[j] == FLOOR]
        floor_rate = statistics.fmean(around) if around else 0.0
        summary.add(result, result.rps / floor_rate if floor_rate > 0 else None)
    return summaries
