import pytest
from django.core.cache import cache

from ..registry.upload_helpers import hub_dirs  # noqa: F401 - a fixture for the upload tests
from .seed import seed_catalogue


@pytest.fixture(autouse=True)
def clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.fixture
def catalogue(db):
    return seed_catalogue()
