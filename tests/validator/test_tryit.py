"""The try-it task's work, in-process: a valid version's adapter on its cached backbone, labels with scores."""

from __future__ import annotations

import json

import pytest

from registry.models import AdapterVersion
from tests.registry.upload_helpers import hub_dirs, maintainer_setup, post_upload  # noqa: F401
from tests.validator.factories import make_adapter

pytestmark = pytest.mark.django_db


@pytest.fixture
def valid_version(client, hub_dirs, settings, backbone_dir, tmp_path):  # noqa: F811
    path = tmp_path / "backbones.json"
    path.write_text(json.dumps({"tiny/bert": {"source": "folder", "path": str(backbone_dir)}}))
    settings.HUB_VALIDATOR_BACKBONES = str(path)
    folder = make_adapter(backbone_dir, tmp_path / "adapter", name="sst-2",
                          head_kwargs={"id2label": {0: "negative", 1: "positive"}})
    _, _, token = maintainer_setup()
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    assert post_upload(client, files, token=token, model_name="tiny/bert").status_code == 201
    version = AdapterVersion.objects.get()
    version.status = "valid"
    version.save()
    return version


def test_try_returns_every_label_with_scores_and_leaves_the_backbone_clean(valid_version):
    from validator.loading import default_cache
    from validator.tryit import run_try

    answer = run_try(valid_version.pk, "w1 w2 w3")
    labels = answer["labels"]
    assert sorted(item["label"] for item in labels) == ["negative", "positive"]
    assert abs(sum(item["score"] for item in labels) - 1.0) < 1e-3
    assert labels[0]["score"] >= labels[1]["score"]
    again = run_try(valid_version.pk, "w1 w2 w3")
    assert again == answer  # deterministic, and the cached backbone carries nothing over
    for loaded in default_cache()._entries.values():
        assert not loaded.model.adapters_config and len(loaded.model.heads) == 0


def test_try_refuses_a_version_that_is_not_valid(valid_version):
    from validator.errors import UsageError
    from validator.tryit import run_try

    valid_version.status = "rejected"
    valid_version.save()
    with pytest.raises(UsageError, match="not a valid"):
        run_try(valid_version.pk, "w1")
