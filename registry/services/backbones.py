"""The backbone allow-list the validator loads from: settings plus the ``Backbone`` rows staff manage.

``HUB_VALIDATOR_BACKBONES`` (settings; a dict of model name -> entry, or a JSON file path, or None for the
validator's default list) is read first; enabled ``Backbone`` rows add entries and override same-named ones.
The entries are in the format of ``validator/backbones.py``; this module only gathers them (no validator
import: the registry never imports the validator).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from adapters_client.rules import packaged_backbones
from django.conf import settings

from ..models import Backbone


def settings_entries() -> dict | None:
    """The settings' list as a dict of entries (relative paths resolved), or None for the default list."""
    value = getattr(settings, "HUB_VALIDATOR_BACKBONES", None)
    if value is None or value == "":
        return None
    if isinstance(value, (str, os.PathLike)):
        file = Path(value)
        data = json.loads(file.read_text(encoding="utf-8"))
        return {name: _absolute(entry, file.parent) for name, entry in data.items()}
    return dict(value)


def _absolute(entry, base: Path):
    if isinstance(entry, str):
        entry = {"source": "folder", "path": entry}
    if isinstance(entry, dict) and entry.get("path") and not os.path.isabs(entry["path"]):
        entry = {**entry, "path": str(base / entry["path"])}
    return entry


def allow_list() -> dict | None:
    """Model name -> entry, for ``validator.pipeline.validate_folder(allow_list=...)``.

    None means the validator's default list (when neither the settings nor the database name any).
    """
    entries = settings_entries()
    rows = {row.model_name: row.as_entry() for row in Backbone.objects.filter(enabled=True)}
    if entries is None and not rows:
        return None
    if entries is None:
        entries = _default_entries()
    return {**entries, **rows}


def _default_entries() -> dict:
    """The validator's default list as plain entries (the packaged MiniLM when it is installed)."""
    return {name: {"source": "folder", "path": folder} for name, folder in packaged_backbones().items()}


def allow_list_names() -> set:
    entries = allow_list()
    return set(entries) if entries is not None else set(_default_entries())
