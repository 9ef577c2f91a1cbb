"""Shared tiny backbones for the validator tests (saved once per session) and a shared backbone cache."""

from __future__ import annotations

import pytest

from tests.validator.factories import make_adapter, save_backbone


@pytest.fixture(scope="session")
def backbone_dir(tmp_path_factory):
    """A tiny BERT (hidden 32) with a WordPiece tokenizer."""
    return save_backbone(tmp_path_factory.mktemp("backbone") / "tiny-bert", tokenizer=True)


@pytest.fixture(scope="session")
def cache():
    from validator.loading import BackboneCache

    return BackboneCache(device="cpu")


@pytest.fixture
def allow_list(backbone_dir):
    return {"tiny-bert": {"source": "folder", "path": str(backbone_dir)}}


@pytest.fixture
def validate(cache, allow_list):
    """validate(folder, backbone="tiny-bert", **options) with the shared cache and the tiny allow-list."""
    from validator.backbones import parse_allow_list
    from validator.pipeline import validate_folder

    def run(folder, backbone="tiny-bert", **options):
        options.setdefault("allow_list", parse_allow_list(allow_list))
        return validate_folder(folder, backbone, cache=cache, **options)

    return run


@pytest.fixture
def adapter(backbone_dir, tmp_path):
    """adapter(config="seq_bn", head="classification", ...) -> a saved adapter folder under tmp_path."""
    counter = iter(range(1000))

    def build(**options):
        return make_adapter(backbone_dir, tmp_path / f"adapter{next(counter)}", **options)

    return build
