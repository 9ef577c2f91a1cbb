"""Ratios, target checks (PASS/FAIL) and the printed table."""

from __future__ import annotations

from .setups import SETUPS

OURS, PEER = "adapters_client", "adapters"
ABSOLUTE_TARGETS = {"seq_bn": 1.10, "lora_merged": 1.02}  # max ratio to the plain backbone
PARALLEL_TARGET = 0.7  # parallel4_skip / four_passes
# mixed-adapter batches: (measured, compared with, max ratio)
MIXED_TARGETS = (("mixed8", "eight_passes", 0.3), ("mixed8", "seq_bn", 1.15))


def _ms(results, lib, name):
    entry = results.get(lib, {}).get(name)
    return entry["median_ms"] if entry and entry.get("status") == "ok" else None


def _check(name, value, target, missing=None):
    if value is None:
        return {"check": name, "value": None, "target": target, "result": f"N/A ({missing or 'not measured'})"}
    return {"check": name, "value": round(value, 4), "target": target,
            "result": "PASS" if value <= target else "FAIL"}


def checks(results: dict, baseline_ms: float, tolerance: float) -> list[dict]:
    """Every target of the benchmark, evaluated on the measured medians."""
    out = []
    for name, target in ABSOLUTE_TARGETS.items():
        ms = _ms(results, OURS, name)
        out.append(_check(f"{name} vs backbone", ms / baseline_ms if ms else None, target))
    for setup in SETUPS:
        ours, peer = _ms(results, OURS, setup.name), _ms(results, PEER, setup.name)
        missing = "adapters library not measured" if peer is None else None
        value = ours / peer if ours and peer else None
        out.append(_check(f"{setup.name} vs adapters library", value, round(1 + tolerance, 4), missing))
    parallel, four = _ms(results, OURS, "parallel4_skip"), _ms(results, OURS, "four_passes")
    out.append(_check("parallel4_skip vs four_passes", parallel / four if parallel and four else None,
                      PARALLEL_TARGET))
    for name, other, target in MIXED_TARGETS:
        ms, other_ms = _ms(results, OURS, name), _ms(results, OURS, other)
        out.append(_check(f"{name} vs {other}", ms / other_ms if ms and other_ms else None, target))
    return out


def _cell(results, lib, name, baseline_ms):
    entry = results.get(lib, {}).get(name)
    if entry is None:
        return "-", "-"
    if entry["status"] != "ok":
        return entry["status"], ""
    return f"{entry['median_ms']:.1f}", f"{entry['median_ms'] / baseline_ms:.3f}x"


def table(results: dict, baseline_ms: float, check_rows: list[dict]) -> str:
    """The printed report: one row per configuration, then the checks."""
    lines = [f"plain backbone forward: {baseline_ms:.1f} ms (median)", "",
             f"{'config':<16} {'ours ms':>9} {'ours ratio':>11} {'adapters ms':>12} {'adapters ratio':>15}"]
    notes = []
    for setup in SETUPS:
        ours_ms, ours_ratio = _cell(results, OURS, setup.name, baseline_ms)
        peer_ms, peer_ratio = _cell(results, PEER, setup.name, baseline_ms)
        for label, value in (("ours", ours_ms), ("adapters", peer_ms)):
            if value.startswith(("not available", "failed")):
                notes.append(f"  {setup.name} ({label}): {value}")
        ours_ms, peer_ms = (v if not v.startswith(("not", "failed")) else "n/a" for v in (ours_ms, peer_ms))
        lines.append(f"{setup.name:<16} {ours_ms:>9} {ours_ratio:>11} {peer_ms:>12} {peer_ratio:>15}")
    lines += notes and ["", "unavailable:"] + notes or []
    lines += ["", f"{'check':<36} {'value':>8} {'target':>7}  result"]
    for row in check_rows:
        value = "-" if row["value"] is None else f"{row['value']:.3f}"
        lines.append(f"{row['check']:<36} {value:>8} {'<=' + str(row['target']):>7}  {row['result']}")
    return "\n".join(lines)
