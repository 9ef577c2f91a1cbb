"""The standard tasks fixture: loads, every slug fits the identifier grammar, served by /api/v1/tasks."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command

from adapters_client.identifiers import AdapterId
from registry.models import Subtask, Task
from registry.management.commands.load_standard_tasks import FIXTURE

from .factories import clear_cache  # noqa: F401

pytestmark = pytest.mark.django_db


def test_fixture_slugs_form_valid_identifiers():
    rows = json.loads(FIXTURE.read_text())
    tasks = {r["pk"]: r["fields"]["slug"] for r in rows if r["model"] == "registry.task"}
    for row in rows:
        if row["model"] == "registry.subtask":
            fields = row["fields"]
            ident = AdapterId.parse(f"{tasks[fields['task']]}/{fields['slug']}@ukp")
            assert ident.subtask == fields["slug"]
            assert fields["dataset_url"].startswith("https://") and fields["metric_name"]


def test_loaddata_and_the_api(client):
    call_command("loaddata", "standard_tasks", stdout=io.StringIO())
    slugs = {t["slug"] for t in client.get("/api/v1/tasks").json()["results"]}
    assert {"sentiment", "nli", "qa", "ner", "lingaccept", "sts", "comsense", "lm"} <= slugs
    sentiment = client.get("/api/v1/tasks/sentiment").json()
    assert {s["slug"] for s in sentiment["subtasks"]} == {"sst-2", "imdb", "rotten-tomatoes"}
    wikitext = client.get("/api/v1/tasks/lm").json()["subtasks"][0]
    assert (wikitext["metric_name"], wikitext["metric_direction"]) == ("perplexity", "lower")


def test_load_standard_tasks_is_idempotent_and_keeps_existing_rows():
    Task.objects.create(slug="sentiment", name="My sentiment")
    out = io.StringIO()
    call_command("load_standard_tasks", stdout=out)
    count = Subtask.objects.count()
    expected = sum(r["model"] == "registry.subtask" for r in json.loads(FIXTURE.read_text()))
    assert count == expected == 18 and Task.objects.get(slug="sentiment").name == "My sentiment"
    call_command("load_standard_tasks", stdout=io.StringIO())
    assert Subtask.objects.count() == count
    call_command("load_standard_tasks", "--update", stdout=io.StringIO())
    assert Task.objects.get(slug="sentiment").name == "Sentiment analysis"
