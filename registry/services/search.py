"""Adapter search: Postgres full-text search (icontains on SQLite), filters, sort and facets."""

from __future__ import annotations

from dataclasses import dataclass

from django.db import connection
from django.db.models import Count, F, Q, QuerySet

from ..models import Adapter, Organisation, Subtask
from ..querysets import with_current_version

SORTS = ("relevance", "downloads", "newest", "score", "name")
FACET_FIELDS = {"task": "task__slug", "method": "method", "model_name": "model_name"}
SEARCH_CONFIG = "english"

# Must stay identical to the expression indexed by migration 0002 so that Postgres uses the index.
ADAPTER_DOC_FIELDS = ("description", "model_name", "method")


@dataclass(frozen=True)
class SearchParams:
    q: str = ""
    task: str = ""
    subtask: str = ""
    org: str = ""
    model_name: str = ""
    method: str = ""
    status: str = ""
    sort: str = ""

    @property
    def effective_sort(self) -> str:
        if self.sort:
            return self.sort
        return "relevance" if self.q else "downloads"


def _is_postgres() -> bool:
    return connection.vendor == "postgresql"


def _fulltext(qs: QuerySet, text: str) -> QuerySet:
    from django.contrib.postgres.search import SearchQuery, SearchRank, SearchVector

    query = SearchQuery(text, search_type="websearch", config=SEARCH_CONFIG)
    subtask_doc = SearchVector(
        "task__slug", "task__name", "slug", "name", "description", config=SEARCH_CONFIG
    )
    subtasks = Subtask.objects.annotate(doc=subtask_doc).filter(doc=query).values("pk")
    orgs = Organisation.objects.annotate(doc=SearchVector("slug", "name", config=SEARCH_CONFIG)).filter(doc=query)
    # A union of primary keys, so that the first branch can use the GIN index of migration 0002.
    own = Adapter.objects.annotate(doc=SearchVector(*ADAPTER_DOC_FIELDS, config=SEARCH_CONFIG)).filter(doc=query)
    matches = own.values("pk").union(
        Adapter.objects.filter(subtask__in=subtasks).values("pk"),
        Adapter.objects.filter(organisation__in=orgs.values("pk")).values("pk"),
    )
    qs = qs.filter(pk__in=matches)
    weighted = (
        SearchVector("task__slug", "task__name", "subtask__slug", "subtask__name", weight="A", config=SEARCH_CONFIG)
        + SearchVector("organisation__slug", "model_name", "method", weight="B", config=SEARCH_CONFIG)
        + SearchVector("description", "subtask__description", weight="C", config=SEARCH_CONFIG)
    )
    return qs.annotate(rank=SearchRank(weighted, query))


def _contains(qs: QuerySet, text: str) -> QuerySet:
    """The embedded (SQLite) fallback: every word must occur in one of the searched fields."""
    fields = (
        "description", "model_name", "method", "task__slug", "task__name", "subtask__slug", "subtask__name",
        "subtask__description", "organisation__slug",
    )
    for word in text.split():
        any_field = Q()
        for field in fields:
            any_field |= Q(**{f"{field}__icontains": word})
        qs = qs.filter(any_field)
    return qs


def _filter(qs: QuerySet, params: SearchParams) -> QuerySet:
    exact = {
        "task__slug": params.task, "subtask__slug": params.subtask, "organisation__slug": params.org,
        "model_name": params.model_name, "method": params.method,
    }
    qs = qs.filter(**{k: v for k, v in exact.items() if v})
    if params.q.strip():
        qs = _fulltext(qs, params.q.strip()) if _is_postgres() else _contains(qs, params.q.strip())
    return qs


def _order(qs: QuerySet, params: SearchParams) -> QuerySet:
    sort = params.effective_sort
    if sort == "relevance" and params.q.strip() and _is_postgres():
        return qs.order_by("-rank", "-download_count", "id")
    if sort == "newest":
        return qs.order_by("-created_at", "-id")
    if sort == "score":
        return qs.order_by(F("current_score").desc(nulls_last=True), "-download_count", "id")
    if sort == "name":
        return qs.order_by("task__slug", "subtask__slug", "organisation__slug", "model_name", "id")
    return qs.order_by("-download_count", "-created_at", "id")


def search_adapters(visible: QuerySet, params: SearchParams) -> tuple[QuerySet, QuerySet]:
    """Return (ordered results, unordered filtered set for facets) from the ``visible`` adapters."""
    qs = with_current_version(_filter(visible, params))
    if params.status:
        qs = qs.filter(current_status=params.status)
    return _order(qs, params), qs


def facets(qs: QuerySet, limit: int = 20) -> dict[str, list[dict]]:
    """Counts per task, method and backbone over the filtered results, largest first."""
    out = {}
    base = qs.order_by().values("pk")
    for name, field in FACET_FIELDS.items():
        rows = (
            qs.model.objects.filter(pk__in=base)
            .values(field)
            .annotate(count=Count("pk"))
            .order_by("-count", field)[:limit]
        )
        out[name] = [{"value": row[field], "count": row["count"]} for row in rows]
    return out
