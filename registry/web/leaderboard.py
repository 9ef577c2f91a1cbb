"""Leaderboards: the valid adapters of a subtask ranked by verified score, and their SVG chart."""

from __future__ import annotations

import math
from dataclasses import dataclass

from django.urls import reverse

from ..choices import MetricDirection, VersionStatus
from ..models import Adapter, AdapterVersion, Subtask
from ..querysets import visible_adapters, with_current_version
from .queries import trainable_parameters, version_size

MAX_ROWS = 100
PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4b5563")
WIDTH, HEIGHT = 720, 320
MARGIN = {"left": 64, "right": 24, "top": 16, "bottom": 48}


@dataclass
class Row:
    rank: int
    adapter: Adapter
    version: AdapterVersion
    parameters: int | None
    parameters_exact: bool
    size: int


def rows(user, subtask: Subtask, model_name: str = "") -> list[Row]:
    """Ranked rows; three queries whatever the number of adapters."""
    qs = visible_adapters(user).filter(subtask=subtask)
    if model_name:
        qs = qs.filter(model_name=model_name)
    qs = with_current_version(qs).filter(current_status=VersionStatus.VALID, current_score__isnull=False)
    score = "current_score"
    order = score if subtask.metric_direction == MetricDirection.LOWER else f"-{score}"
    adapters = list(qs.order_by(order, "-download_count", "id")[:MAX_ROWS])
    versions = AdapterVersion.objects.filter(pk__in=[a.current_version_id for a in adapters])
    by_id = {v.pk: v for v in versions.prefetch_related("files")}
    out = []
    for rank, adapter in enumerate(adapters, start=1):
        version = by_id[adapter.current_version_id]
        params, exact = trainable_parameters(version)
        out.append(Row(rank, adapter, version, params, exact, version_size(version)))
    return out


def backbones(user, subtask: Subtask) -> list[str]:
    return list(
        visible_adapters(user).filter(subtask=subtask).order_by("model_name")
        .values_list("model_name", flat=True).distinct()
    )


def _nice_range(low: float, high: float) -> tuple[float, float]:
    if high - low < 1e-9:
        pad = max(abs(high) * 0.05, 0.01)
        return low - pad, high + pad
    pad = (high - low) * 0.08
    return low - pad, high + pad


def chart(ranked: list[Row]) -> dict | None:
    """Geometry of a score-against-parameters scatter plot (log x axis); None without points."""
    points = [r for r in ranked if r.parameters]
    if not points:
        return None
    xs = [math.log10(r.parameters) for r in points]
    ys = [r.version.verified_score for r in points]
    x0, x1 = min(xs) - 0.25, max(xs) + 0.25
    y0, y1 = _nice_range(min(ys), max(ys))
    plot_w = WIDTH - MARGIN["left"] - MARGIN["right"]
    plot_h = HEIGHT - MARGIN["top"] - MARGIN["bottom"]

    def px(x: float) -> float:
        return round(MARGIN["left"] + (x - x0) / (x1 - x0) * plot_w, 1)

    def py(y: float) -> float:
        return round(MARGIN["top"] + (1 - (y - y0) / (y1 - y0)) * plot_h, 1)

    methods = sorted({r.adapter.method for r in points})
    colours = {m: PALETTE[i % len(PALETTE)] for i, m in enumerate(methods)}
    dots = [
        {"x": px(x), "y": py(y), "colour": colours[r.adapter.method],
         "label": f"{r.adapter.identifier} ({r.adapter.method}, {r.adapter.model_name}): {y:.4g}",
         "url": reverse("web:adapter", args=[r.adapter.pk])}
        for r, x, y in zip(points, xs, ys)
    ]
    xticks = [{"x": px(e), "label": _power_label(e)} for e in range(math.ceil(x0), math.floor(x1) + 1)]
    yticks = [{"y": py(y0 + (y1 - y0) * i / 4), "label": f"{y0 + (y1 - y0) * i / 4:.3g}"} for i in range(5)]
    return {
        "width": WIDTH, "height": HEIGHT, "dots": dots, "xticks": xticks, "yticks": yticks,
        "legend": [{"method": m, "colour": c} for m, c in colours.items()],
        "left": MARGIN["left"], "right": WIDTH - MARGIN["right"], "top": MARGIN["top"],
        "bottom": HEIGHT - MARGIN["bottom"], "xlabel_y": HEIGHT - 8, "mid_x": MARGIN["left"] + plot_w / 2,
        "mid_y": MARGIN["top"] + plot_h / 2,
    }


def _power_label(exponent: int) -> str:
    value = 10 ** exponent
    for limit, suffix in ((10**9, "B"), (10**6, "M"), (10**3, "k")):
        if value >= limit:
            return f"{value // limit}{suffix}"
    return str(value)
