"""The validator with the hub's database: versionstatus runs the checks, evalsample, scoring, model names."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import CommandError, call_command

from registry.models import AdapterVersion, Backbone, Subtask
from tests.registry.upload_helpers import IDENTIFIER, hub_dirs, maintainer_setup, post_upload  # noqa: F401
from tests.validator.factories import edit_weights, first_key, make_adapter

pytestmark = pytest.mark.django_db


@pytest.fixture
def allow_listed(settings, backbone_dir, tmp_path):
    path = tmp_path / "backbones.json"
    path.write_text(json.dumps({"tiny/bert": {"source": "folder", "path": str(backbone_dir)}}))
    settings.HUB_VALIDATOR_BACKBONES = str(path)
    return "tiny/bert"


def _upload(client, folder, model_name, version="1"):
    _, _, token = maintainer_setup()
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    answer = post_upload(client, files, token=token, model_name=model_name, version=version)
    assert answer.status_code == 201, answer.content
    return AdapterVersion.objects.get(version=version)


def _labelled(backbone_dir, tmp_path, **options):
    return make_adapter(backbone_dir, tmp_path / "adapter", name="sst-2",
                        head_kwargs={"id2label": {0: "negative", 1: "positive"}}, **options)


def test_versionstatus_valid_runs_the_checks_and_stores_the_report_and_score(
        client, hub_dirs, allow_listed, backbone_dir, tmp_path):  # noqa: F811
    version = _upload(client, _labelled(backbone_dir, tmp_path), allow_listed)
    subtask = Subtask.objects.get()
    sample = tmp_path / "sample.jsonl"
    sample.write_text("\n".join(json.dumps({"text": t, "label": lab}) for t, lab in
                                [("w1 w2 w3", "positive"), ("w4 w5", "negative"), ("w6", "positive"),
                                 ("w7 w8 w9 w10", "negative")]))
    call_command("evalsample", subtask.path, str(sample), "--source", "four made-up rows", stderr=io.StringIO())
    subtask.refresh_from_db()
    assert len(subtask.evaluation_sample) == 4 and subtask.evaluation_source == "four made-up rows"

    call_command("versionstatus", IDENTIFIER, "1", "--status", "valid", stderr=io.StringIO())
    version.refresh_from_db()
    assert version.status == "valid"
    report = version.validation_report
    assert report["verdict"] == "valid" and report["set_by"] == "versionstatus"
    assert {c["name"] for c in report["checks"]} >= {"files", "weights", "load", "forward", "head"}
    assert report["backbone"]["model_name"] == "tiny/bert" and len(report["backbone"]["weights_sha256"]) == 64
    assert report["score"]["status"] == "scored" and report["score"]["samples"] == 4
    assert version.verified_score == report["score"]["value"]
    assert version.verified_score in (0.0, 0.25, 0.5, 0.75, 1.0)


def test_versionstatus_refuses_a_version_the_checks_reject(client, hub_dirs, allow_listed, backbone_dir, tmp_path):  # noqa: F811
    folder = _labelled(backbone_dir, tmp_path)
    key = first_key(folder, "adapter_down")
    edit_weights(folder, lambda t: t[key].fill_(float("nan")))
    version = _upload(client, folder, allow_listed)
    with pytest.raises(CommandError, match="non_finite_weights"):
        call_command("versionstatus", IDENTIFIER, "1", "--status", "valid", stderr=io.StringIO())
    version.refresh_from_db()
    assert version.status == "pending"
    with pytest.raises(CommandError, match="--reason"):
        call_command("versionstatus", IDENTIFIER, "1", "--status", "valid", "--skip-checks", stderr=io.StringIO())
    call_command("versionstatus", IDENTIFIER, "1", "--status", "valid", "--skip-checks", "--reason", "known NaN",
                 stderr=io.StringIO())
    version.refresh_from_db()
    assert version.status == "valid"
    assert version.validation_report == {"set_by": "versionstatus", "skipped_checks": True, "reason": "known NaN"}


@pytest.mark.parametrize("model_name", ["/home/alice/models/bert", "./bert", "~/bert", "a/b/c", "x..y"])
def test_upload_refuses_a_local_path_as_the_backbone(client, hub_dirs, backbone_dir, tmp_path, model_name):  # noqa: F811
    _, _, token = maintainer_setup()
    folder = _labelled(backbone_dir, tmp_path)
    files = {p.name: p.read_bytes() for p in folder.iterdir() if p.is_file()}
    answer = post_upload(client, files, token=token, model_name=model_name)
    assert answer.status_code == 400
    assert answer.json()["code"] == "invalid_model_name" and answer.json()["field"] == "model_name"
    assert AdapterVersion.objects.count() == 0


def test_allow_listed_backbone_rows_extend_the_settings(settings, backbone_dir):
    from registry.services.backbones import allow_list, allow_list_names

    settings.HUB_VALIDATOR_BACKBONES = None
    assert "sentence-transformers/all-MiniLM-L6-v2" in allow_list_names()  # the packaged default
    Backbone.objects.create(model_name="odd name", source="folder", path=str(backbone_dir))
    entries = allow_list()
    assert entries["odd name"] == {"source": "folder", "path": str(backbone_dir)}
    assert "sentence-transformers/all-MiniLM-L6-v2" in entries
    Backbone.objects.create(model_name="off", source="folder", path="/x", enabled=False)
    assert "off" not in allow_list()
