"""Home, explore, search, organisation and leaderboard pages: content, visibility, query counts."""

from __future__ import annotations

import re
from html import unescape

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from registry.models import Adapter

from .seed import PASSWORD, add_version

pytestmark = pytest.mark.django_db


def body(response) -> str:
    assert response.status_code == 200, response.status_code
    return response.content.decode()


def test_home_shows_counts_popular_search_box_and_demo_snippet(client, catalogue):
    html = unescape(body(client.get("/")))
    assert 'adapters_client.load("sentiment/rotten-tomatoes@demo")' in html
    assert 'action="/search/"' in html and 'name="q"' in html
    assert re.search(r"<strong>7</strong><span>adapters</span>", html)  # the private one is not counted
    popular = html.index("Popular")
    assert html.index("sentiment/sst-2@ukp", popular) < html.index("Recently added")
    assert "secret" not in html and "/api/docs/" in html


def test_explore_lists_subtasks_with_their_adapters(client, catalogue):
    html = body(client.get("/explore/"))
    assert "Rotten Tomatoes" in html and "/leaderboards/sentiment/rotten-tomatoes/" in html
    assert "demo · lora</a><span class=\"backbone\">sentence-transformers/all-MiniLM-L6-v2" in html
    assert "secret-bert" not in html
    assert re.search(r"<strong>5</strong> adapters", html)  # 5 public on rotten-tomatoes, not 6


def test_search_finds_the_demo_sentiment_adapters_for_movie_review_sentiment(client, catalogue):
    html = body(client.get("/search/", {"q": "movie review sentiment"}))
    assert "sentiment/rotten-tomatoes@demo" in html
    assert "secret-bert" not in html and "hidden movie review" not in html


def test_search_facets_count_only_visible_adapters_and_filter(client, catalogue):
    html = body(client.get("/search/", {"task": "sentiment"}))
    # the org facet: 'secret' is not listed for an outsider
    assert 'data-facet="org"' in html and ">secret<" not in html
    facet = re.search(r'href="([^"]*subtask=rotten-tomatoes[^"]*)"[^>]*data-facet="subtask"><span class="facet-value">'
                      r'sentiment/rotten-tomatoes</span><span class="count">(\d+)</span>', html)
    assert facet and facet.group(2) == "5"
    filtered = body(client.get("/search/" + facet.group(1).replace("&amp;", "&")))
    assert "5 adapters" in filtered and "sentiment/sst-2@ukp" not in filtered


@pytest.mark.parametrize("facet, value, expected", [
    ("method", "lora", 1), ("model_name", "roberta-base", 1), ("org", "ukp", 4), ("license", "apache-2.0", 7),
    ("status", "valid", 7),
])
def test_each_facet_filters_the_results(client, catalogue, facet, value, expected):
    html = body(client.get("/search/", {facet: value}))
    assert f"{expected} adapter" in html


def test_member_sees_private_adapter_in_search_and_facets(client, catalogue):
    client.login(username="sam", password=PASSWORD)
    html = body(client.get("/search/", {"q": "movie review"}))
    assert "secret-bert" in html and ">secret<" in html


def test_search_sorts_and_paginates_with_the_whole_query_in_the_url(client, catalogue):
    html = body(client.get("/search/", {"sort": "score", "task": "sentiment"}))
    first = re.findall(r'<h3><a href="/adapters/\d+/">([^<]+)</a>', html)
    assert first[0] == "sentiment/sst-2@ukp"  # 0.921 is the best score
    newest = re.findall(r'<h3><a href="/adapters/\d+/">([^<]+)</a>', body(client.get("/search/", {"sort": "newest"})))
    assert newest[0] == "sentiment/imdb@demo"
    adapter = catalogue["adapters"][0]
    for i in range(25):
        Adapter.objects.create(organisation=adapter.organisation, task=adapter.task, subtask=adapter.subtask,
                               model_name=f"bb-{i}", model_type="bert", method="lora", config={},
                               config_hash=f"{i + 100:016x}")
    page2 = body(client.get("/search/", {"q": "", "method": "lora", "page": "2"}))
    assert "Page 2 of 2" in page2 and 'href="?method=lora&amp;page=1"' in page2.replace("q=&amp;", "")


def test_search_queries_do_not_grow_with_the_number_of_results(client, catalogue):
    def count(**params) -> int:
        with CaptureQueriesContext(connection) as ctx:
            body(client.get("/search/", params))
        return len(ctx.captured_queries)

    few = count(q="imdb")
    many = count(q="")
    assert many == few and many <= 14


def test_leaderboard_ranks_valid_adapters_and_draws_a_chart(client, catalogue):
    html = body(client.get("/leaderboards/sentiment/rotten-tomatoes/"))
    ranking = re.findall(r'<a class="mono" href="/adapters/\d+/">([^<]+)</a>', html)
    assert ranking[0] == "sentiment/rotten-tomatoes@ukp" and len(ranking) == 5
    assert "0.861" in html and html.index("0.861") < html.index("0.781")
    assert html.count("<circle") == 5 and "<svg" in html and "secret-bert" not in html
    assert "74k" in html or "73.7k" in html  # the LoRA adapter's parameters, from its report


def test_leaderboard_filters_by_backbone_and_skips_pending(client, catalogue):
    adapter = catalogue["adapters"][0]
    add_version(adapter, "3", status="pending", score=None)
    minilm = "sentence-transformers/all-MiniLM-L6-v2"
    html = body(client.get("/leaderboards/sentiment/rotten-tomatoes/", {"model_name": minilm}))
    ranking = re.findall(r'<a class="mono" href="/adapters/\d+/">([^<]+)</a>', html)
    assert ranking == ["sentiment/rotten-tomatoes@demo", "sentiment/rotten-tomatoes@demo"]


def test_leaderboard_query_count_is_constant(client, catalogue, django_assert_max_num_queries):
    with django_assert_max_num_queries(6):
        body(client.get("/leaderboards/sentiment/rotten-tomatoes/"))


def test_home_and_explore_query_counts_are_bounded(client, catalogue, django_assert_max_num_queries):
    with django_assert_max_num_queries(8):
        body(client.get("/"))
    with django_assert_max_num_queries(8):
        body(client.get("/explore/"))


def test_organisation_page_lists_adapters_and_members(client, catalogue):
    html = body(client.get("/orgs/ukp/"))
    assert "UKP Lab" in html and "olivia" in html and "sentiment/sst-2@ukp" in html
    assert client.get("/orgs/nope/").status_code == 404


def test_private_organisation_adapters_are_hidden_from_outsiders(client, catalogue):
    html = body(client.get("/orgs/secret/"))
    assert "secret-bert" not in html and "0 adapters" in html
    client.login(username="sam", password=PASSWORD)
    assert "secret-bert" in body(client.get("/orgs/secret/"))


def test_facet_counts_agree_between_the_sql_and_the_python_paths(catalogue):
    from registry.models import Adapter as Model
    from registry.web import queries

    rows = queries.facet_rows(Model.objects.filter(visibility="public"))
    in_sql = queries._grouping_sets(rows)
    in_python = queries._count_in_python(rows)
    assert in_sql == in_python
    assert in_python["subtask"][("sentiment", "rotten-tomatoes")] == 5 and in_python["org"][("ukp",)] == 4
    assert sum(in_python["status"].values()) == sum(in_python["task"].values()) and in_python["status"][("valid",)]


def test_status_facet_counts_the_current_version_and_filters(client, catalogue):
    adapter = catalogue["adapters"][0]
    fresh = Adapter.objects.create(organisation=adapter.organisation, task=adapter.task, subtask=adapter.subtask,
                                   model_name="pending-bert", model_type="bert", method="lora", config={},
                                   config_hash="a" * 16)
    add_version(fresh, "1", status="pending", score=None)
    html = body(client.get("/search/"))
    facet = re.search(r'data-facet="status"><span class="facet-value">pending</span><span class="count">(\d+)<', html)
    assert facet and facet.group(1) == "1"
    assert re.search(r'data-facet="status"><span class="facet-value">valid</span><span class="count">7<', html)
    pending = body(client.get("/search/", {"status": "pending"}))
    assert "1 adapter" in pending and "pending-bert" in pending
    assert "pending-bert" not in body(client.get("/search/", {"status": "valid"}))
