"""The api_load report: the table, the targets, and the comparison of two runs."""

from __future__ import annotations

import json
import math
from pathlib import Path

from .rounds import FLOOR, Summary

TARGET_RESOLVE_RATIO = 0.8
TARGET_RESOLVE_P99_MS = 50.0
TARGET_SEARCH_P99_MS = 100.0


def table(summaries: dict[str, Summary]) -> str:
    head = (f"{'scenario':<9}{'rounds':>7}{'requests':>10}{'errors':>7}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}"
            f"{'ratio median [min, max]':>27}")
    lines = [head]
    for s in summaries.values():
        ratio = "" if s.name == FLOOR else f"{s.ratio:.2f}x [{s.ratio_min:.2f}, {s.ratio_max:.2f}]"
        lines.append(f"{s.name:<9}{len(s.rates):>7}{s.requests:>10}{s.errors:>7}{s.rps:>9.0f}{s.p50:>9.2f}"
                     f"{s.p99:>9.2f}{ratio:>27}")
    return "\n".join(lines)


def checks(summaries: dict[str, Summary]) -> list[tuple[str, bool, str]]:
    """(label, passed, measured) for each target; a missing scenario fails its targets."""
    nan = Summary("missing")
    resolve, search = summaries.get("resolve", nan), summaries.get("search", nan)
    return [
        (f"resolve req/s >= {TARGET_RESOLVE_RATIO}x floor (median of rounds)",
         resolve.ratio >= TARGET_RESOLVE_RATIO, f"{resolve.ratio:.2f}x"),
        (f"resolve p99 < {TARGET_RESOLVE_P99_MS:.0f} ms", resolve.p99 < TARGET_RESOLVE_P99_MS, f"{resolve.p99:.1f} ms"),
        (f"search p99 < {TARGET_SEARCH_P99_MS:.0f} ms", search.p99 < TARGET_SEARCH_P99_MS, f"{search.p99:.1f} ms"),
        ("no errors", all(s.errors == 0 for s in summaries.values()),
         f"{sum(s.errors for s in summaries.values())} errors"),
    ]


def to_json(summaries: dict[str, Summary], meta: dict) -> dict:
    return {"meta": meta, "scenarios": {name: s.as_dict() for name, s in summaries.items()}}


def save(path: str | Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")


def agreement(current: dict, previous: dict) -> list[tuple[str, bool, str]]:
    """Two runs agree on a scenario when each run's median ratio lies within the other's [min, max]."""
    rows = []
    for name, now in current["scenarios"].items():
        before = previous["scenarios"].get(name)
        if name == FLOOR or before is None:
            continue
        inside_before = before["ratio_min"] <= now["ratio_median"] <= before["ratio_max"]
        inside_now = now["ratio_min"] <= before["ratio_median"] <= now["ratio_max"]
        ok = inside_before and inside_now and not math.isnan(now["ratio_median"])
        rows.append((name, ok, f"now {now['ratio_median']:.2f}x [{now['ratio_min']:.2f}, {now['ratio_max']:.2f}]"
                               f" / before {before['ratio_median']:.2f}x [{before['ratio_min']:.2f}, "
                               f"{before['ratio_max']:.2f}]"))
    return rows
