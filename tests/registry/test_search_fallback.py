"""The embedded (SQLite) search fallback: every word must occur in one of the searched fields."""

from __future__ import annotations

import pytest

from registry.models import Adapter
from registry.services.search import _contains

from .factories import make_adapter, make_task_subtask

pytestmark = pytest.mark.django_db


def test_words_from_the_subtask_description_and_task_find_the_adapter():
    subtask = make_task_subtask("sentiment", "rotten-tomatoes",
                                description="Binary sentiment of movie review snippets from Rotten Tomatoes.")
    found = make_adapter(subtask=subtask)
    other = make_adapter(subtask=make_task_subtask("nli", "multinli", description="Entailment."))
    assert list(_contains(Adapter.objects.all(), "movie review sentiment")) == [found]
    assert list(_contains(Adapter.objects.all(), "MOVIE Review")) == [found]
    assert list(_contains(Adapter.objects.all(), "movie entailment")) == []
    assert set(_contains(Adapter.objects.all(), "")) == {found, other}
