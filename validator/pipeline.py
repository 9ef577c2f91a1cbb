"""``validate_folder``: every check of an adapter folder on its backbone, as one structured report (no ORM).

Checks run in order; a check runs only when the checks it needs passed, otherwise it is reported as
skipped. An adapter fault fails its check (the version is rejected, with every reason listed); a
platform fault (``PlatformFault``: the backbone cannot be loaded, out of memory) is raised instead,
so the caller can retry.
"""

from __future__ import annotations

import time
from contextlib import ExitStack
from pathlib import Path
from typing import Optional

from . import model_checks, static_checks
from .backbones import parse_allow_list, resolve_backbone
from .errors import AdapterFault, PlatformFault, UsageError, ValidatorError
from .loading import BackboneCache, default_cache
from .measure import measured, memory_source
from .report import FAILED, PASSED, REJECTED, SKIPPED, VALID, WARNING, AdapterInfo, CheckResult, Report
from .static_checks import HEAD_CONFIG, Context

WARNING_CODES = frozenset({"no_effect"})
MAX_PROBLEMS = 100


class _Backbone:
    """The backbone check: resolve the name on the allow-list, then take it from the cache (or load it)."""

    def __init__(self, name: str, allow_list, cache: BackboneCache, allow_local_paths: bool, stack: ExitStack):
        self.name, self.allow_list, self.cache = name, allow_list, cache
        self.allow_local_paths, self.stack = allow_local_paths, stack
        self.figures: dict = {}

    def __call__(self, ctx: Context) -> list:
        source = resolve_backbone(self.name, self.allow_list, self.allow_local_paths)
        loaded, cached = self.cache.get(source)
        self.stack.enter_context(loaded.lock)  # one validation at a time on a shared model
        ctx.backbone = loaded
        self.figures.update(cached=cached, probe=loaded.probe_kind, shape_only=source.shape_only,
                            backbone_bytes=loaded.nbytes)
        return []


# name -> the checks it needs
_NEEDS = {
    "files": (), "backbone": ("files",), "config": ("files",), "weights": ("files", "config", "backbone"),
    "finite": ("files",), "load": ("weights", "finite"), "forward": ("load",), "head": ("forward",),
}


def _outcome(problems: list, reject_no_effect: bool) -> tuple[str, Optional[str]]:
    if not problems:
        return PASSED, None
    codes = [p["code"] for p in problems]
    if all(c in WARNING_CODES for c in codes) and not reject_no_effect:
        return WARNING, codes[0]
    return FAILED, next(c for c in codes if c not in WARNING_CODES or reject_no_effect)


def _run_check(name: str, check, ctx: Context, source: str, reject_no_effect: bool) -> CheckResult:
    result = CheckResult(name=name)
    with measured(source) as figures:
        try:
            problems = check(ctx)
        except AdapterFault as exc:
            problems = [{"code": exc.code, "detail": exc.detail, **_plain(exc.extra)}]
        except ValidatorError:
            raise
        except Exception as exc:  # a bug or an unforeseen failure is ours, never the adapter's
            raise PlatformFault(f"the {name} check crashed: {type(exc).__name__}: {exc}", code="internal_error",
                                check=name) from exc
    result.seconds, result.peak_bytes = round(figures.seconds, 6), figures.peak_bytes
    result.added_bytes = figures.added_bytes
    if len(problems) > MAX_PROBLEMS:  # a hostile file may have thousands of bad keys: keep the report small
        result.figures["problems_total"] = len(problems)
        problems = problems[:MAX_PROBLEMS]
    result.problems = problems
    result.outcome, result.code = _outcome(problems, reject_no_effect)
    if result.outcome != PASSED:
        first = next(p for p in problems if p["code"] == result.code)
        result.detail = first.get("detail", "") or f"{len(problems)} problem(s)"
    return result


def _plain(extra: dict) -> dict:
    """Only JSON-friendly facts go into the report."""
    return {k: v for k, v in extra.items() if isinstance(v, (str, int, float, bool, list, type(None)))}


def _skip_reason(name: str, results: dict, ctx: Context) -> Optional[str]:
    for needed in _NEEDS[name]:
        if results.get(needed) is None or results[needed].outcome in (FAILED, SKIPPED):
            return f"needs the {needed} check to pass"
    if name == "head" and HEAD_CONFIG not in ctx.paths:
        return "the adapter has no head"
    return None


def validate_folder(path, backbone: str, *, allow_list=None, cache: Optional[BackboneCache] = None,
                    allow_local_paths: bool = False, reject_no_effect: bool = False) -> Report:
    """Check the adapter folder ``path`` on ``backbone`` (a model name on ``allow_list``, see backbones.py).

    ``allow_list``: a dict (model name -> entry or ``BackboneSource``), a JSON file path, or None (the default
    list); see backbones.py.
    ``cache``: the backbone cache (default: this process's). ``allow_local_paths``: a backbone may also be
    a local model folder (the offline CLI). Returns the report; raises ``PlatformFault`` on our faults.
    """
    if not isinstance(backbone, str) or not backbone:
        raise UsageError("a backbone (model name or folder) is required")
    cache = cache if cache is not None else default_cache()
    allow_list = parse_allow_list(allow_list)  # a malformed list is our fault: raised before any check
    ctx = Context(folder=Path(path))
    source = memory_source(cache.device)
    started = time.perf_counter()
    results: dict = {}
    with ExitStack() as stack:
        backbone_check = _Backbone(backbone, allow_list, cache, allow_local_paths, stack)
        checks = (("files", static_checks.check_files), ("backbone", backbone_check),
                  ("config", static_checks.check_config), ("weights", static_checks.check_weights),
                  ("finite", static_checks.check_finite), ("load", model_checks.check_load),
                  ("forward", model_checks.check_forward), ("head", model_checks.check_head))
        try:
            for name, check in checks:
                reason = _skip_reason(name, results, ctx)
                if reason:
                    results[name] = CheckResult(name=name, outcome=SKIPPED, detail=reason)
                    continue
                results[name] = _run_check(name, check, ctx, source, reject_no_effect)
            results["backbone"].figures.update(backbone_check.figures)
            _add_figures(results, ctx)
        finally:
            model_checks.cleanup(ctx)
    report = Report(verdict=VALID, adapter=_adapter_info(ctx), checks=list(results.values()),
                    backbone=ctx.backbone.fingerprint if ctx.backbone is not None else None,
                    seconds=round(time.perf_counter() - started, 6), memory_source=source)
    report.verdict = REJECTED if report.codes else VALID
    return report


def _add_figures(results: dict, ctx: Context) -> None:
    if "max_abs_change" in ctx.outputs:
        results["forward"].figures["max_abs_change"] = ctx.outputs["max_abs_change"]
    if "head_note" in ctx.outputs:
        results["head"].figures["note"] = ctx.outputs["head_note"]
    if results["weights"].outcome != SKIPPED:
        results["weights"].figures["tensors"] = len(ctx.tensors) + len(ctx.head_tensors)
        results["weights"].figures["parameters"] = _numel(ctx.tensors)
        results["weights"].figures["head_parameters"] = _numel(ctx.head_tensors)


def _numel(tensors) -> int:
    """Parameter count of a name -> tensor (or header entry with a ``shape``) mapping."""
    total = 0
    for value in tensors.values():
        shape = getattr(value, "shape", None)
        if shape is None and isinstance(value, dict):
            shape = value.get("shape")
        count = 1
        for dim in shape or ():
            count *= int(dim)
        total += count
    return total


def _adapter_info(ctx: Context) -> AdapterInfo:
    meta = ctx.meta
    head = (ctx.head_doc or {}).get("config")
    head_type = head.get("head_type") if isinstance(head, dict) else None
    return AdapterInfo(path=str(ctx.folder), name=getattr(meta, "name", "") or "",
                       method=getattr(meta, "method", "") or "", config_hash=getattr(meta, "config_hash", "") or "",
                       declared_model_name=getattr(meta, "model_name", "") or "",
                       head_type=head_type if isinstance(head_type, str) else None)


__all__ = ["validate_folder", "PlatformFault", "WARNING_CODES"]
