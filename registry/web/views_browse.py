"""Browsing pages: home, explore, search, organisations and leaderboards."""

from __future__ import annotations

from django.core.paginator import Paginator
from django.http import Http404
from django.shortcuts import get_object_or_404, render
from django.template.loader import render_to_string

from ..choices import VersionStatus
from ..models import Subtask, Task
from ..services import search
from . import leaderboard, queries
from .caching import anonymous_page, shared_body

PAGE_SIZE = 20
SORT_LABELS = {"relevance": "Relevance", "downloads": "Downloads", "newest": "Newest", "score": "Verified score"}
DEMO_IDENTIFIER = "sentiment/rotten-tomatoes@demo"
FACET_TITLES = (
    ("task", "Task"), ("subtask", "Subtask"), ("model_name", "Backbone"), ("method", "Method"),
    ("org", "Organisation"), ("license", "License"), ("status", "Status"),
)


class CountedPaginator(Paginator):
    """A paginator told its count (the facets already counted the results: no COUNT query)."""

    def __init__(self, object_list, per_page, *, total: int):
        super().__init__(object_list, per_page)
        self.__dict__["count"] = total  # Paginator.count is a cached_property


@anonymous_page("home")
def home(request):
    def render_body():
        context = queries.home(request.user)
        context.update(demo_identifier=DEMO_IDENTIFIER,
                       demo_snippet=f'import adapters_client\nmodel = adapters_client.load("{DEMO_IDENTIFIER}")')
        return render_to_string("web/home_body.html", context, request)

    return render(request, "web/home.html", {"body": shared_body(request, "home", render_body)})


@anonymous_page("explore")
def explore(request):
    body = shared_body(request, "explore", lambda: render_to_string(
        "web/explore_body.html", {"tasks": queries.explore(request.user)}, request))
    return render(request, "web/explore.html", {"body": body})


def _text(request, name: str, limit: int) -> str:
    return (request.GET.get(name) or "").strip()[:limit]


def parse_search(request) -> queries.WebSearch:
    """The whole query comes from the URL, so that a result page can be shared."""
    sort = _text(request, "sort", 16)
    status = _text(request, "status", 16)
    params = search.SearchParams(
        q=_text(request, "q", 200), task=_text(request, "task", 64), subtask=_text(request, "subtask", 64),
        org=_text(request, "org", 64), model_name=_text(request, "model_name", 200),
        method=_text(request, "method", 32), status=status if status in VersionStatus.values else "",
        sort=sort if sort in SORT_LABELS else "",
    )
    return queries.WebSearch(params=params, license=_text(request, "license", 64))


@anonymous_page("search")
def search_view(request):
    query = parse_search(request)
    body = shared_body(request, "search", lambda: render_to_string(
        "web/search_body.html", _search_context(request, query), request))
    return render(request, "web/search.html", {"query": query, "body": body})


def _search_context(request, query: queries.WebSearch) -> dict:
    ordered, facets = queries.search_page(request.user, query)
    page = CountedPaginator(ordered, PAGE_SIZE, total=facets.pop("total")).get_page(request.GET.get("page"))
    active = {k: v for k, v in request.GET.items() if k in dict(FACET_TITLES) and v}
    groups = [
        {"name": name, "title": title, "values": _facet_links(request, name, facets.get(name, []))}
        for name, title in FACET_TITLES
    ]
    return {"query": query, "page": page, "facet_groups": groups, "sorts": SORT_LABELS,
            "sort": query.params.effective_sort, "active": active}


def _facet_links(request, name: str, values: list[dict]) -> list[dict]:
    """Each facet value with the URL that toggles it (the rest of the query kept, back to page 1)."""
    out = []
    for item in values:
        query = request.GET.copy()
        query.pop("page", None)
        if name == "subtask":
            task, subtask = item["parts"]
            selected = query.get("subtask") == subtask and query.get("task", task) == task
            updates = {"subtask": None} if selected else {"task": task, "subtask": subtask}
        else:
            selected = query.get(name) == item["value"]
            updates = {name: None if selected else item["value"]}
        for key, value in updates.items():
            if value is None:
                query.pop(key, None)
            else:
                query[key] = value
        encoded = query.urlencode()
        out.append({**item, "selected": selected, "url": "?" + encoded if encoded else "?"})
    return out


def organisation(request, slug: str):
    org, adapters, members = queries.organisation_page(request.user, slug)
    if org is None:
        raise Http404("no such organisation")
    return render(request, "web/organisation.html", {"org": org, "adapters": adapters, "members": members})


def leaderboards(request):
    tasks = Task.objects.order_by("name").prefetch_related("subtasks")
    return render(request, "web/leaderboards.html", {"tasks": tasks})


@anonymous_page("leaderboard")
def leaderboard_view(request, task: str, subtask: str):
    found = get_object_or_404(Subtask.objects.select_related("task"), task__slug=task, slug=subtask)
    model_name = _text(request, "model_name", 200)

    def render_body():
        ranked = leaderboard.rows(request.user, found, model_name)
        return render_to_string("web/leaderboard_body.html", {
            "subtask": found, "rows": ranked, "chart": leaderboard.chart(ranked),
            "backbones": leaderboard.backbones(request.user, found), "model_name": model_name,
        }, request)

    return render(request, "web/leaderboard.html", {"subtask": found, "body": shared_body(request, "leaderboard",
                                                                                          render_body)})
