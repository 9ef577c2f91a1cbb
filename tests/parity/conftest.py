"""Fixtures of the parity suite (reference virtualenv only): tiny backbones saved once per session."""

from __future__ import annotations

import os

import pytest

from .parity_helpers import save_backbone

os.environ.setdefault("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="session")
def backbone_dirs(tmp_path_factory):
    """``kind -> folder`` of a saved tiny backbone for bert, roberta and gpt2."""
    root = tmp_path_factory.mktemp("backbones")
    return {kind: save_backbone(kind, root / kind) for kind in ("bert", "roberta", "gpt2")}

