"""GET /api/v1/adapters: Postgres full-text search, filters, sorting, facets, pagination."""

from __future__ import annotations

import pytest
from django.db import connection

from registry.choices import VersionStatus

from .factories import clear_cache, make_adapter, make_org, make_task_subtask, make_version  # noqa: F401

pytestmark = pytest.mark.django_db
URL = "/api/v1/adapters"


def ids(response) -> list[int]:
    assert response.status_code == 200, response.content
    return [row["id"] for row in response.json()["results"]]


@pytest.fixture
def catalogue():
    ukp, lab = make_org("ukp"), make_org("lab")
    sst = make_task_subtask("sentiment", "sst-2", description="Stanford sentiment treebank")
    imdb = make_task_subtask("sentiment", "imdb", description="movie reviews")
    mnli = make_task_subtask("nli", "multinli", description="natural language inference")
    a = make_adapter(ukp, sst, description="Binary sentiment classifier trained on movie snippets", download_count=5)
    b = make_adapter(lab, imdb, model_name="roberta-base", method="lora", description="polarity of long reviews",
                     download_count=50)
    c = make_adapter(ukp, mnli, method="lora", description="entailment between premise and hypothesis",
                     download_count=20)
    for adapter in (a, b, c):
        make_version(adapter)
    return {"a": a, "b": b, "c": c}


def test_search_uses_postgres_full_text():
    assert connection.vendor == "postgresql"


def test_search_finds_words_of_the_description_with_stemming(client, catalogue):
    # "classifiers" only matches "classifier" through the English stemmer, never as a substring.
    assert ids(client.get(URL, {"q": "classifiers"})) == [catalogue["a"].pk]
    assert ids(client.get(URL, {"q": "premises"})) == [catalogue["c"].pk]
    assert ids(client.get(URL, {"q": "entailment premise"})) == [catalogue["c"].pk]


def test_search_finds_by_subtask_description_and_backbone(client, catalogue):
    assert ids(client.get(URL, {"q": "treebank"})) == [catalogue["a"].pk]
    assert ids(client.get(URL, {"q": "roberta"})) == [catalogue["b"].pk]


def test_search_ranks_identifier_matches_above_description_matches(client, catalogue):
    other = make_adapter(make_org("zz"), make_task_subtask("qa", "squad"), description="nothing about sentiment here",
                         download_count=1000)
    make_version(other)
    found = ids(client.get(URL, {"q": "sentiment"}))
    assert set(found) == {catalogue["a"].pk, catalogue["b"].pk, other.pk}
    assert found[-1] == other.pk  # most downloads, but only its description matches


def test_search_without_match_is_empty_with_empty_facets(client, catalogue):
    body = client.get(URL, {"q": "zebra"}).json()
    assert body["count"] == 0 and body["results"] == []
    assert body["facets"] == {"task": [], "method": [], "model_name": []}


def test_filters(client, catalogue):
    assert set(ids(client.get(URL, {"task": "sentiment"}))) == {catalogue["a"].pk, catalogue["b"].pk}
    assert ids(client.get(URL, {"subtask": "imdb"})) == [catalogue["b"].pk]
    assert set(ids(client.get(URL, {"org": "ukp"}))) == {catalogue["a"].pk, catalogue["c"].pk}
    assert ids(client.get(URL, {"model_name": "roberta-base"})) == [catalogue["b"].pk]
    assert ids(client.get(URL, {"method": "lora", "org": "ukp"})) == [catalogue["c"].pk]


def test_status_filter_uses_the_current_version(client, catalogue):
    pending = make_adapter(make_org(), make_task_subtask("qa", "squad"))
    make_version(pending, status=VersionStatus.PENDING)
    assert ids(client.get(URL, {"status": "pending"})) == [pending.pk]
    assert pending.pk not in ids(client.get(URL, {"status": "valid"}))
    assert client.get(URL, {"status": "bogus"}).json()["code"] == "invalid_input"


def test_sort_orders(client, catalogue):
    a, b, c = catalogue["a"], catalogue["b"], catalogue["c"]
    assert ids(client.get(URL, {"sort": "downloads"})) == [b.pk, c.pk, a.pk]
    assert ids(client.get(URL)) == [b.pk, c.pk, a.pk]  # the default without q
    assert ids(client.get(URL, {"sort": "newest"})) == [c.pk, b.pk, a.pk]
    a.versions.update(verified_score=0.9)
    c.versions.update(verified_score=0.5)
    assert ids(client.get(URL, {"sort": "score"})) == [a.pk, c.pk, b.pk]  # no score: last


def test_facets_count_the_current_query(client, catalogue):
    facets = client.get(URL, {"task": "sentiment"}).json()["facets"]
    assert facets["task"] == [{"value": "sentiment", "count": 2}]
    assert sorted((f["value"], f["count"]) for f in facets["method"]) == [("lora", 1), ("seq_bn", 1)]
    everything = client.get(URL).json()["facets"]
    assert everything["method"][0] == {"value": "lora", "count": 2}
    assert {f["value"] for f in everything["model_name"]} == {"bert-base-uncased", "roberta-base"}


def test_pagination(client, catalogue):
    first = client.get(URL, {"page_size": 2, "sort": "downloads"}).json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["next"] and first["previous"] is None
    second = client.get(URL, {"page_size": 2, "page": 2, "sort": "downloads"}).json()
    assert [r["id"] for r in second["results"]] == [catalogue["a"].pk]
    assert client.get(URL, {"page": 9}).status_code == 404


def test_list_rows_describe_the_current_version(client, catalogue):
    make_version(catalogue["a"], "2", status=VersionStatus.PENDING)
    row = next(r for r in client.get(URL).json()["results"] if r["id"] == catalogue["a"].pk)
    assert row["identifier"] == "sentiment/sst-2@ukp"
    assert (row["current_version"], row["current_status"]) == ("1", "valid")


def test_results_are_cached_and_invalidated_by_writes(client, catalogue):
    assert len(ids(client.get(URL))) == 3
    extra = make_adapter(make_org(), make_task_subtask("qa", "squad"))
    assert extra.pk in ids(client.get(URL))


def test_full_text_search_can_use_the_gin_index(catalogue):
    from django.contrib.auth.models import AnonymousUser

    from registry.querysets import visible_adapters
    from registry.services.search import SearchParams, search_adapters

    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")  # a tiny table would otherwise be scanned
    ordered, _ = search_adapters(visible_adapters(AnonymousUser()), SearchParams(q="reviews"))
    assert "adapter_search_doc" in ordered.explain()
    assert [a.pk for a in ordered] == [catalogue["b"].pk]
