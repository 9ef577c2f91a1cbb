"""The report's JSON round trip and text, and the per-check figures (time, peak memory)."""

from __future__ import annotations

import json

from validator.measure import measured, memory_source
from validator.report import AdapterInfo, BackboneFingerprint, CheckResult, Report, render_text


def _report():
    checks = [CheckResult("files"), CheckResult("weights", outcome="failed", code="shape_mismatch",
                                                  detail="1 problem(s)", problems=[
                                                      {"code": "shape_mismatch", "key": "bert.x", "expected": [2, 4],
                                                       "got": [3, 4]}]),
              CheckResult("forward", outcome="warning", code="no_effect"), CheckResult("head", outcome="skipped")]
    fingerprint = BackboneFingerprint("m", "hf_cache", "abc123", "c" * 64, "w" * 64, model_type="bert")
    return Report(verdict="rejected", adapter=AdapterInfo(path="/a", name="demo", method="lora"), checks=checks,
                  backbone=fingerprint, seconds=1.5, memory_source="rss")


def test_json_round_trip_and_derived_fields():
    report = _report()
    data = json.loads(report.to_json())
    assert data["codes"] == ["shape_mismatch"] and data["warnings"] == ["no_effect"] and data["shape_only"] is False
    assert data["backbone"]["revision"] == "abc123" and data["format"] == 1
    assert Report.from_dict(data) == report


def test_text_rendering_names_verdict_codes_and_keys():
    text = render_text(_report())
    assert text.splitlines()[0] == "verdict: REJECTED  (shape_mismatch)"
    assert "m@abc123 [hf_cache]" in text
    assert "- shape_mismatch: bert.x (expected [2, 4], got [3, 4])" in text
    assert "warn  forward  [no_effect]" in text and "skip  head" in text


def test_measured_counts_time_and_the_peak_of_a_large_allocation():
    import torch

    source = memory_source("cpu")
    with measured(source) as figures:
        block = torch.ones(64 * 1024 * 1024 // 4)  # 64 MiB, touched
        del block
    assert figures.seconds > 0
    assert figures.added_bytes >= 60 * 1024 * 1024  # the peak rose by the block (allocator slack allowed)
    assert figures.peak_bytes >= figures.start_bytes + figures.added_bytes
    with measured(source) as small:
        pass
    assert small.added_bytes < 16 * 1024 * 1024


def test_tracemalloc_source_counts_python_allocations():
    with measured("tracemalloc") as figures:
        block = bytearray(8 * 1024 * 1024)
        del block
    assert figures.added_bytes >= 8 * 1024 * 1024


def test_weights_check_counts_the_parameters(validate, adapter):
    report = validate(adapter(config="lora", head="classification", num_labels=3))
    figures = report.check("weights").figures
    # LoRA r=8 on q and v of 2 layers (hidden 32): 2 * 2 * (8*32 + 32*8); the head: 32*32+32 + 32*3+3
    assert figures["parameters"] == 2 * 2 * (8 * 32 + 32 * 8)
    assert figures["head_parameters"] == 32 * 32 + 32 + 32 * 3 + 3
