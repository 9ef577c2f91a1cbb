"""Read queries of the web pages. Every function runs a fixed number of SQL queries.

Visibility always starts from registry.querysets.visible_adapters, so private adapters never
reach a page, a count, a facet or a leaderboard of an outsider.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from django.db import connection
from django.db.models import (
    Case, CharField, Count, Exists, F, OuterRef, Prefetch, QuerySet, Subquery, Value, When, Window,
)
from django.db.models.functions import RowNumber

from ..choices import Role, VersionStatus
from ..models import Adapter, AdapterVersion, Membership, Organisation, Subtask, Task
from ..querysets import NEWEST_FIRST, resolvable_versions, visible_adapters, with_current_version
from ..services import search

HOME_LIST = 6
EXPLORE_PER_SUBTASK = 5
# Facet name -> the fields counted together (a subtask is a (task, subtask) pair).
FACET_FIELDS = {
    "task": ("task__slug",), "subtask": ("task__slug", "subtask__slug"), "model_name": ("model_name",),
    "method": ("method",), "org": ("organisation__slug",), "license": ("license",), "status": ("status_key",),
}
_COLUMNS = ("task__slug", "subtask__slug", "model_name", "method", "organisation__slug", "license", "status_key")
FACET_LIMIT = 20
# Bytes per parameter when a report does not state the count (weights are float32 by default).
BYTES_PER_PARAMETER = 4


def home(user) -> dict:
    visible = visible_adapters(user)
    listed = with_current_version(visible)
    counts = visible.aggregate(adapters=Count("pk"), organisations=Count("organisation", distinct=True),
                               backbones=Count("model_name", distinct=True))
    return {
        "counts": counts,
        "popular": list(listed.order_by("-download_count", "-created_at", "id")[:HOME_LIST]),
        "recent": list(listed.order_by("-created_at", "-id")[:HOME_LIST]),
        "tasks": list(Task.objects.order_by("name").prefetch_related(
            Prefetch("subtasks", queryset=Subtask.objects.order_by("slug")))),
    }


def explore(user) -> list[Task]:
    """Tasks with their subtasks; each subtask carries ``top_adapters`` and ``adapter_count``."""
    visible = visible_adapters(user)
    top = visible.only("pk", "subtask_id", "download_count", "created_at")
    subtasks = Subtask.objects.order_by("slug")
    counts = dict(visible.order_by().values_list("subtask").annotate(n=Count("pk")))
    tasks = list(Task.objects.order_by("name").prefetch_related(Prefetch("subtasks", queryset=subtasks)))
    ids = [s.pk for t in tasks for s in t.subtasks.all()]
    tops = _top_per_subtask(top, ids)
    for task in tasks:
        for sub in task.subtasks.all():
            sub.adapter_count = counts.get(sub.pk, 0)
            sub.top_adapters = tops.get(sub.pk, [])
    return tasks


def _top_per_subtask(top: QuerySet, subtask_ids: list[int]) -> dict[int, list[Adapter]]:
    """The most downloaded adapters of each subtask: rank the bare rows with a window function
    (cheap), then annotate only the winners with their current version. Two queries."""
    ranked = (
        top.filter(subtask__in=subtask_ids).order_by()
        .annotate(row=Window(RowNumber(), partition_by=[F("subtask_id")],
                             order_by=[F("download_count").desc(), F("created_at").desc(), F("id")]))
        .filter(row__lte=EXPLORE_PER_SUBTASK).values_list("pk", flat=True)
    )
    winners = with_current_version(
        Adapter.objects.filter(pk__in=list(ranked)).select_related("task", "subtask", "organisation")
    )
    out: dict[int, list[Adapter]] = {}
    for adapter in winners.order_by("-download_count", "-created_at", "id"):
        out.setdefault(adapter.subtask_id, []).append(adapter)
    return out


@dataclass(frozen=True)
class WebSearch:
    """The search service's parameters plus what only the page filters on (license, page)."""

    params: search.SearchParams
    license: str = ""


def search_page(user, query: WebSearch) -> tuple[QuerySet, dict]:
    """(ordered results, facets) for the search page; the facets count the filtered results and
    ``facets["total"]`` is the number of results.

    The status of an adapter's current version is filtered and counted here with EXISTS on its
    resolvable versions (an adapter has a valid current version exactly when it has one), which
    stays fast on large catalogues, instead of grouping by the current-version annotation; it is
    one more column of the facets' single GROUPING SETS query."""
    visible = visible_adapters(user)
    if query.license:
        visible = visible.filter(license=query.license)
    if query.params.status:
        visible = _with_status(visible, query.params.status)
    params = replace(query.params, status="")
    ordered, filtered = search.search_adapters(visible, params)
    base = Adapter.objects.filter(pk__in=filtered.order_by().values("pk"))
    return ordered, _facets(base)


def _facets(base: QuerySet) -> dict[str, list[dict]]:
    """Counts per facet value over the matching adapters in one query, so the text search runs
    once: GROUPING SETS on Postgres, counted in Python on the embedded SQLite database."""
    rows = facet_rows(base)
    counted = _grouping_sets(rows) if connection.vendor == "postgresql" else _count_in_python(rows)
    out = {"total": sum(counted["task"].values())}  # every adapter has exactly one task
    for name, counter in counted.items():
        top = sorted(counter.items(), key=lambda item: (-item[1], item[0]))[:FACET_LIMIT]
        out[name] = [{"value": "/".join(parts), "count": n, "parts": list(parts)} for parts, n in top]
    return out


def facet_rows(base: QuerySet) -> QuerySet:
    """One row of facet columns per adapter (the current version's status included)."""
    return base.order_by().annotate(status_key=_status_key()).values_list(*_COLUMNS)


def _count_in_python(rows: QuerySet) -> dict[str, Counter]:
    counters = {name: Counter() for name in FACET_FIELDS}
    for row in rows:
        columns = dict(zip(_COLUMNS, row))
        for name, fields in FACET_FIELDS.items():
            counters[name][tuple(columns[f] or "" for f in fields)] += 1
    return counters


def _grouping_sets(rows: QuerySet) -> dict[str, Counter]:
    sql, params = rows.query.sql_with_params()
    names = [f"c{i}" for i in range(len(_COLUMNS))]
    index = dict(zip(_COLUMNS, names))
    sets = ", ".join("(" + ", ".join(index[f] for f in fields) + ")" for fields in FACET_FIELDS.values())
    # GROUPING(c0, ..., c5) is a bit mask, the first column the highest bit, set where not grouped.
    width = len(_COLUMNS)
    mask_of = {
        name: sum(1 << (width - 1 - i) for i, column in enumerate(_COLUMNS) if column not in fields)
        for name, fields in FACET_FIELDS.items()
    }
    query = (f"SELECT {', '.join(names)}, GROUPING({', '.join(names)}), COUNT(*) "
             f"FROM ({sql}) AS m ({', '.join(names)}) GROUP BY GROUPING SETS ({sets})")
    counters = {name: Counter() for name in FACET_FIELDS}
    with connection.cursor() as cursor:
        cursor.execute(query, params)
        for row in cursor.fetchall():
            columns, mask, count = dict(zip(_COLUMNS, row)), row[width], row[width + 1]
            for name, fields in FACET_FIELDS.items():
                if mask == mask_of[name]:
                    counters[name][tuple(columns[f] or "" for f in fields)] += count
    return counters


def _has_resolvable():
    return Exists(resolvable_versions().filter(adapter=OuterRef("pk")))


def _newest_status():
    newest = AdapterVersion.objects.filter(adapter=OuterRef("pk")).order_by(*NEWEST_FIRST)
    return Subquery(newest.values("status")[:1])


def _with_status(qs: QuerySet, status: str) -> QuerySet:
    if status == VersionStatus.VALID:
        return qs.filter(_has_resolvable())
    return qs.exclude(_has_resolvable()).annotate(newest_status=_newest_status()).filter(newest_status=status)


def _status_key():
    """The status of an adapter's current version, per row: ``valid`` when it has a resolvable version
    (EXISTS), else the status of its newest version (evaluated only for those rows)."""
    return Case(When(_has_resolvable(), then=Value(VersionStatus.VALID)), default=_newest_status(),
                output_field=CharField())


def visible_adapter(user, pk: int) -> Adapter | None:
    """The adapter with its relations and current version, or None when ``user`` may not see it."""
    qs = visible_adapters(user).filter(pk=pk).select_related("default_version")
    return with_current_version(qs).first()


def adapter_versions(adapter: Adapter) -> list[AdapterVersion]:
    return list(adapter.versions.order_by("-created_at", "-id").prefetch_related("files"))


def organisation_page(user, slug: str):
    org = Organisation.objects.filter(slug=slug).first()
    if org is None:
        return None, [], []
    adapters = list(
        with_current_version(visible_adapters(user).filter(organisation=org))
        .order_by("-download_count", "-created_at", "id")
    )
    members = list(
        Membership.objects.filter(organisation=org).select_related("user").order_by("role", "user__username")
    )
    return org, adapters, members


def writable_organisations(user) -> list[Organisation]:
    if not getattr(user, "is_authenticated", False):
        return []
    return list(
        Organisation.objects.filter(memberships__user=user, memberships__role__in=[Role.OWNER, Role.MAINTAINER])
        .order_by("slug")
    )


def version_size(version: AdapterVersion) -> int:
    """Bytes of all files of ``version`` (its files must be prefetched)."""
    return sum(f.size for f in version.files.all())


def trainable_parameters(version: AdapterVersion) -> tuple[int | None, bool]:
    """(count, exact). Exact when the validation report states it; else estimated from the
    safetensors bytes at 4 bytes per parameter (files must be prefetched); (None, False) without files."""
    report = version.validation_report or {}
    for check in report.get("checks") or []:
        if isinstance(check, dict) and check.get("name") == "weights":
            figures = check.get("figures") or {}
            for key in ("parameters", "trainable_parameters"):
                if isinstance(figures.get(key), int):
                    return figures[key], True
    weights = [f.size for f in version.files.all() if f.name.endswith(".safetensors")]
    if not weights:
        return None, False
    return sum(weights) // BYTES_PER_PARAMETER, False


def head_type(version: AdapterVersion | None) -> str | None:
    if version is None:
        return None
    adapter_info = (version.validation_report or {}).get("adapter") or {}
    value = adapter_info.get("head_type") if isinstance(adapter_info, dict) else None
    return value if isinstance(value, str) else None


def is_valid(version: AdapterVersion | None) -> bool:
    return version is not None and version.status == VersionStatus.VALID
