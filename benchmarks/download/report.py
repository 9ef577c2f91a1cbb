"""The download benchmark's tables, target checks and JSON."""

from __future__ import annotations

import json
from pathlib import Path

TARGET_COLD_RATIO = 0.9   # cold download throughput >= 0.9x the raw GET's ...
TARGET_COLD_FROM_MB = 10  # ... for adapters of 10 MB and above
TARGET_WARM_RATIO = 1.1   # warm load_adapter time <= 1.1x the plain load's


def _ratio(d: dict) -> str:
    return f"{d['ratio_median']:.2f}x [{d['ratio_min']:.2f}, {d['ratio_max']:.2f}]"


def download_table(results: dict, link_mbps=None) -> str:
    where = f"across a {link_mbps:g} Mbit/s link" if link_mbps else "over loopback"
    lines = [f"Cold download vs raw GET of the same S3 object, {where} (MB/s, MB = 10^6 bytes, medians of rounds)",
             f"{'size':<8}{'file bytes':>12}{'rounds':>8}{'raw MB/s':>10}{'cold MB/s':>11}"
             f"{'cold/raw median [min, max]':>29}{'target':>10}"]
    for r in results.values():
        d = r["download"]
        target = f">= {TARGET_COLD_RATIO}x" if r["size_mb"] >= TARGET_COLD_FROM_MB else "-"
        lines.append(f"{str(r['size_mb']) + ' MB':<8}{r['weights_bytes']:>12}{len(d['measured']):>8}"
                     f"{d['baseline_median']:>10.1f}{d['measured_median']:>11.1f}{_ratio(d):>29}{target:>10}")
    return "\n".join(lines)


def load_table(results: dict) -> str:
    lines = ["Warm model.load_adapter (offline cache) vs safetensors load_file + add_adapter + copy (ms, medians)",
             f"{'size':<8}{'file bytes':>12}{'rounds':>8}{'plain ms':>10}{'warm ms':>11}"
             f"{'warm/plain median [min, max]':>29}{'target':>10}"]
    for r in results.values():
        d = r["load"]
        lines.append(f"{str(r['size_mb']) + ' MB':<8}{r['weights_bytes']:>12}{len(d['measured']):>8}"
                     f"{d['baseline_median'] * 1000:>10.1f}{d['measured_median'] * 1000:>11.1f}{_ratio(d):>29}"
                     f"{'<= ' + str(TARGET_WARM_RATIO) + 'x':>10}")
    return "\n".join(lines)


def breakdown_table(results: dict) -> str:
    lines = ["What a cold download adds to the raw GET, each part timed alone (ms, medians of 3)",
             f"{'size':<8}{'raw GET':>10}{'resolve':>10}{'direct':>10}{'one 302':>10}{'sha256':>10}{'write+fsync':>13}"]
    for r in results.values():
        b, d = r["breakdown"], r["download"]
        raw_ms = r["weights_bytes"] / 1e6 / d["baseline_median"] * 1000
        lines.append(f"{str(r['size_mb']) + ' MB':<8}{raw_ms:>10.1f}{b['resolve_ms']:>10.1f}"
                     f"{b['direct_resolve_ms']:>10.1f}{b['redirect_ms']:>10.1f}"
                     f"{b['sha256_ms']:>10.1f}{b['write_fsync_ms']:>13.1f}")
    return "\n".join(lines)


def checks(results: dict) -> list[tuple[str, bool, str]]:
    """(label, passed, measured): the targets, then the sanity of what was measured."""
    rows = []
    for r in results.values():
        size, d, w = r["size_mb"], r["download"], r["load"]
        if size >= TARGET_COLD_FROM_MB:
            rows.append((f"{size} MB: cold >= {TARGET_COLD_RATIO}x raw GET (median)",
                         d["ratio_median"] >= TARGET_COLD_RATIO, f"{d['ratio_median']:.2f}x"))
        rows.append((f"{size} MB: warm <= {TARGET_WARM_RATIO}x plain load (median)",
                     w["ratio_median"] <= TARGET_WARM_RATIO, f"{w['ratio_median']:.2f}x"))
        sizes = d["baseline_bytes"] + d["measured_bytes"] + w["baseline_bytes"] + w["measured_bytes"]
        rows.append((f"{size} MB: every transfer and load had the file's {r['weights_bytes']} bytes",
                     bool(sizes) and all(s == r["weights_bytes"] for s in sizes),
                     f"{sorted(set(sizes))}"))
        rounds = len(d["measured"]) + len(w["measured"])
        rows.append((f"{size} MB: every cold download and warm load verified (contents, parameters)",
                     d["checked"] == len(d["measured"]) and w["checked"] == len(w["measured"]),
                     f"{d['checked'] + w['checked']}/{rounds}"))
    return rows


def to_json(results: dict, meta: dict, rows: list) -> dict:
    return {"meta": meta, "sizes": {str(k): v for k, v in results.items()},
            "checks": [{"label": label, "passed": ok, "measured": measured} for label, ok, measured in rows]}


def save(path: str | Path, data: dict) -> None:
    Path(path).write_text(json.dumps(data, indent=2, allow_nan=True) + "\n")

