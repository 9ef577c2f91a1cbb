"""The validation report: every check with its outcome, code and figures, the backbone's fingerprint, the verdict.

``Report.to_dict()`` is what the hub stores and the API returns (plain JSON types only);
``Report.from_dict`` reads it back; ``render_text`` is the human-readable form the CLI prints.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from typing import Optional

REPORT_FORMAT = 1
PASSED, FAILED, WARNING, SKIPPED = "passed", "failed", "warning", "skipped"
VALID, REJECTED = "valid", "rejected"


@dataclass
class CheckResult:
    """One check: ``outcome`` is passed / failed / warning / skipped; ``problems`` lists every reason found."""

    name: str
    outcome: str = PASSED
    code: Optional[str] = None
    detail: str = ""
    problems: list = field(default_factory=list)
    seconds: float = 0.0
    peak_bytes: Optional[int] = None
    added_bytes: Optional[int] = None
    figures: dict = field(default_factory=dict)

    @property
    def failed(self) -> bool:
        return self.outcome == FAILED


@dataclass
class BackboneFingerprint:
    """Which backbone the adapter was checked on, and a digest of exactly what was loaded."""

    model_name: str
    source: str
    revision: Optional[str]
    config_sha256: str
    weights_sha256: str
    shape_only: bool = False
    device: str = "cpu"
    dtype: str = "float32"
    model_type: str = ""
    hidden_size: Optional[int] = None


@dataclass
class AdapterInfo:
    """What the adapter's own files declare."""

    path: str
    name: str = ""
    method: str = ""
    config_hash: str = ""
    declared_model_name: str = ""
    head_type: Optional[str] = None


@dataclass
class Report:
    verdict: str
    adapter: AdapterInfo
    checks: list = field(default_factory=list)
    backbone: Optional[BackboneFingerprint] = None
    seconds: float = 0.0
    memory_source: str = ""
    format: int = REPORT_FORMAT

    @property
    def valid(self) -> bool:
        return self.verdict == VALID

    @property
    def codes(self) -> list:
        """The codes of the failed checks, in check order."""
        return [c.code for c in self.checks if c.failed and c.code]

    @property
    def warnings(self) -> list:
        return [c.code for c in self.checks if c.outcome == WARNING and c.code]

    @property
    def shape_only(self) -> bool:
        return bool(self.backbone and self.backbone.shape_only)

    def check(self, name: str) -> CheckResult:
        for item in self.checks:
            if item.name == name:
                return item
        raise KeyError(name)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["codes"] = self.codes
        data["warnings"] = self.warnings
        data["shape_only"] = self.shape_only
        return data

    def to_json(self, indent: Optional[int] = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent, sort_keys=True)

    @classmethod
    def from_dict(cls, data: dict) -> "Report":
        backbone = data.get("backbone")
        return cls(
            verdict=data["verdict"],
            adapter=AdapterInfo(**data["adapter"]),
            checks=[CheckResult(**c) for c in data.get("checks", [])],
            backbone=BackboneFingerprint(**backbone) if backbone else None,
            seconds=data.get("seconds", 0.0),
            memory_source=data.get("memory_source", ""),
            format=data.get("format", REPORT_FORMAT),
        )


_MARKS = {PASSED: "ok", FAILED: "FAIL", WARNING: "warn", SKIPPED: "skip"}


def _size(value: Optional[int]) -> str:
    if value is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(value) < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return str(value)


def _problem_line(problem: dict) -> str:
    text = str(problem.get("code", ""))
    if "key" in problem:
        text += f": {problem['key']}"
    if "got" in problem:
        text += f" (expected {problem.get('expected')}, got {problem['got']})"
    elif "expected" in problem:
        text += f" (expected {problem['expected']})"
    if problem.get("detail"):
        text += f" - {problem['detail']}"
    return text


def render_text(report: Report, max_problems: int = 20) -> str:
    """A readable report: the verdict, the backbone, then one line per check and its problems."""
    a = report.adapter
    lines = [f"verdict: {report.verdict.upper()}" + (f"  ({', '.join(report.codes)})" if report.codes else ""),
             f"adapter: {a.name or '?'} ({a.method or '?'}, config {a.config_hash or '?'}) at {a.path}"]
    b = report.backbone
    if b is not None:
        revision = f"@{b.revision}" if b.revision else ""
        lines.append(f"backbone: {b.model_name}{revision} [{b.source}{', shape only' if b.shape_only else ''}] "
                     f"on {b.device}, config sha256 {b.config_sha256[:16]}, weights sha256 {b.weights_sha256[:16]}")
    lines.append(f"checks ({report.seconds:.2f} s, memory: {report.memory_source}):")
    for check in report.checks:
        code = f" [{check.code}]" if check.code else ""
        line = f"  {_MARKS.get(check.outcome, check.outcome):>4}  {check.name:<8}{code}"
        if check.outcome != SKIPPED:
            line += f" {check.seconds:.3f} s, peak {_size(check.peak_bytes)} (+{_size(check.added_bytes)})"
        if check.detail and not check.problems:
            line += f"  {check.detail}"
        lines.append(line)
        for problem in check.problems[:max_problems]:
            lines.append(f"          - {_problem_line(problem)}")
        if len(check.problems) > max_problems:
            lines.append(f"          ... and {len(check.problems) - max_problems} more")
    return "\n".join(lines) + "\n"
