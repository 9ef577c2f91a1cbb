"""The README.md of a version, read from the weights store once per content (it is immutable)."""

from __future__ import annotations

import logging

from django.core.cache import cache

from ..errors import RegistryError
from ..models import AdapterVersion
from ..storage import open_for_download

log = logging.getLogger(__name__)

README_NAME = "README.md"
MAX_README_BYTES = 200_000
CACHE_SECONDS = 24 * 3600


def readme_text(version: AdapterVersion | None) -> str:
    """The README's text, or '' when the version has none (its files must be prefetched)."""
    if version is None:
        return ""
    found = next((f for f in version.files.all() if f.name == README_NAME), None)
    if found is None or found.size > MAX_README_BYTES:
        return ""
    key = f"web:readme:{found.sha256}"  # content-addressed: a cached text never goes stale
    text = cache.get(key)
    if text is None:
        try:
            with open_for_download(found.storage_key) as handle:
                text = handle.read(MAX_README_BYTES).decode("utf-8", errors="replace")
        except (RegistryError, OSError) as exc:
            log.warning("README of version %s unavailable: %s", version.pk, exc)
            return ""
        cache.set(key, text, CACHE_SECONDS)
    return text
