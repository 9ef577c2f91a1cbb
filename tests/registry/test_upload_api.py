"""POST /api/v1/adapters/upload on the filesystem store: the happy path and every hostile-file row.

Each refusal checks the exact status and code AND that nothing is left behind: no version or
file row, no stored object, no temporary file.
"""

from __future__ import annotations

import hashlib
import json
import pickle

import pytest

from registry.choices import VersionStatus
from registry.models import Adapter, AdapterVersion, VersionFile
from registry.storage import key_for

from .upload_helpers import (
    adapter_config, adapter_files, assert_nothing_left, files_under, head_files, hub_dirs,  # noqa: F401
    maintainer_setup, post_upload, raw_safetensors,
)

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(hub_dirs):  # noqa: F811
    return maintainer_setup()[2]


def test_happy_path_records_a_pending_version(client, hub_dirs, token,  # noqa: F811
                                             django_capture_on_commit_callbacks):
    files = adapter_files(**{"README.md": "# SST-2 adapter\n".encode()})
    with django_capture_on_commit_callbacks() as callbacks:
        response = post_upload(client, files, token, claimed_score="0.91", description="tiny", license="mit")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["status"] == "pending" and body["identifier"] == "sentiment/sst-2@ukp"
    assert body["version"] == "1" and body["created"] is True and body["method"] == "seq_bn"
    assert [f["name"] for f in body["files"]] == ["README.md", "adapter.safetensors", "adapter_config.json"]
    assert len(callbacks) == 1  # the validation task is sent after commit

    version = AdapterVersion.objects.get()
    assert version.status == VersionStatus.PENDING and version.claimed_score == pytest.approx(0.91)
    adapter = version.adapter
    assert (adapter.model_name, adapter.model_type, adapter.method) == ("bert-base-uncased", "bert", "seq_bn")
    assert adapter.config["reduction_factor"] == 16 and len(adapter.config_hash) == 16
    assert adapter.license == "mit"
    for vf in VersionFile.objects.all():
        content = files[vf.name]
        assert vf.sha256 == hashlib.sha256(content).hexdigest() and vf.size == len(content)
        assert vf.storage_key == key_for(vf.sha256)
        assert (hub_dirs["weights"] / vf.storage_key).read_bytes() == content
    assert len(files_under(hub_dirs["weights"])) == 3
    assert list(hub_dirs["tmp"].iterdir()) == []


def test_identical_reupload_is_a_200_noop_and_different_bytes_409(client, hub_dirs, token):  # noqa: F811
    assert post_upload(client, adapter_files(), token).status_code == 201
    stored = files_under(hub_dirs["weights"])
    again = post_upload(client, adapter_files(), token)
    assert again.status_code == 200 and again.json()["created"] is False
    assert AdapterVersion.objects.count() == 1 and VersionFile.objects.count() == 2

    different = post_upload(client, adapter_files(seed=1), token)
    assert different.status_code == 409 and different.json()["code"] == "version_exists"
    assert AdapterVersion.objects.count() == 1 and VersionFile.objects.count() == 2
    assert files_under(hub_dirs["weights"]) == stored
    assert list(hub_dirs["tmp"].iterdir()) == []


def test_new_version_reuses_the_adapter_and_shared_objects(client, hub_dirs, token):  # noqa: F811
    assert post_upload(client, adapter_files(), token).status_code == 201
    response = post_upload(client, adapter_files(), token, version="2")
    assert response.status_code == 201
    assert Adapter.objects.count() == 1 and AdapterVersion.objects.count() == 2
    assert len(files_under(hub_dirs["weights"])) == 2  # content-addressed: stored once


def test_upload_with_a_head(client, hub_dirs, token):  # noqa: F811
    response = post_upload(client, adapter_files(**head_files()), token)
    assert response.status_code == 201, response.content
    assert sorted(VersionFile.objects.values_list("name", flat=True)) == [
        "adapter.safetensors", "adapter_config.json", "head_config.json", "model_head.safetensors",
    ]


def test_bad_head_config_names_the_field(client, hub_dirs, token):  # noqa: F811
    head = head_files()
    config = json.loads(head["head_config.json"])
    config["config"]["num_labels"] = "two"
    head["head_config.json"] = json.dumps(config).encode()
    response = post_upload(client, adapter_files(**head), token)
    assert response.status_code == 400 and response.json()["field"] == "config.num_labels"
    assert response.json()["filename"] == "head_config.json"
    assert_nothing_left(hub_dirs)


def _entry(offsets, shape=(1,)):
    return {"dtype": "F32", "shape": list(shape), "data_offsets": list(offsets)}


DUPLICATE = (b'{"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, '
             b'"w": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}')
HOSTILE_WEIGHTS = {
    "under-8-bytes": (b"\x01\x02", 400, "invalid_safetensors"),
    "header-longer-than-file": (raw_safetensors({"w": _entry([0, 4])}, length=1 << 40), 400, "invalid_safetensors"),
    "header-not-utf8": (raw_safetensors(b'{"\xff": 1}'), 400, "invalid_safetensors"),
    "header-not-object": (raw_safetensors(b"[1, 2]"), 400, "invalid_safetensors"),
    "duplicate-tensor": (raw_safetensors(DUPLICATE, b"\0" * 4), 400, "invalid_safetensors"),
    "overlap": (raw_safetensors({"a": _entry([0, 4]), "b": _entry([2, 6])}, b"\0" * 8), 400, "invalid_safetensors"),
    "out-of-range": (raw_safetensors({"a": _entry([0, 4]), "b": _entry([4, 8])}, b"\0" * 4), 400,
                     "invalid_safetensors"),
    "gap": (raw_safetensors({"a": _entry([0, 4]), "b": _entry([8, 12])}, b"\0" * 12), 400, "invalid_safetensors"),
    "shape-dtype-span": (raw_safetensors({"a": _entry([0, 4], shape=(3,))}, b"\0" * 4), 400,
                         "invalid_safetensors"),
    "pickle-under-safetensors-name": (pickle.dumps({"w": 1}, protocol=4), 415, "pickle_not_accepted"),
    "zip-under-safetensors-name": (b"PK\x03\x04" + b"\0" * 60, 415, "pickle_not_accepted"),
}


@pytest.mark.parametrize("case", sorted(HOSTILE_WEIGHTS))
def test_hostile_weights_are_refused_and_nothing_is_left(client, hub_dirs, token, case):  # noqa: F811
    content, status, code = HOSTILE_WEIGHTS[case]
    response = post_upload(client, adapter_files(**{"adapter.safetensors": content}), token)
    assert response.status_code == status, response.content
    assert response.json()["code"] == code
    if case in ("duplicate-tensor", "overlap", "out-of-range", "gap"):
        assert response.json()["tensor"] in response.json()["detail"]
    assert_nothing_left(hub_dirs)


def test_header_over_cap_is_refused(client, hub_dirs, token, settings):  # noqa: F811
    settings.HUB_MAX_SAFETENSORS_HEADER_BYTES = 100
    response = post_upload(client, adapter_files(), token)
    assert response.status_code == 400 and response.json()["code"] == "invalid_safetensors"
    assert "over the limit of 100" in response.json()["detail"]
    assert_nothing_left(hub_dirs)


@pytest.mark.parametrize("name", ["pytorch_adapter.bin", "adapter.pt", "model.ckpt", "weights.pkl"])
def test_pickle_file_names_are_415(client, hub_dirs, token, name):  # noqa: F811
    files = adapter_files(**{name: pickle.dumps({"w": 1}, protocol=2)})
    response = post_upload(client, files, token)
    assert response.status_code == 415 and response.json()["code"] == "pickle_not_accepted"
    assert_nothing_left(hub_dirs)


BAD_CONFIGS = {
    "invalid-json": (b"{oops", ""),
    "unknown-method": (json.dumps(adapter_config(config={"architecture": "evil"})).encode(), "config.architecture"),
    "auto-map": (json.dumps(adapter_config(auto_map={"AutoModel": "x.Y"})).encode(), "auto_map"),
    "remote-code-in-config": (
        json.dumps(adapter_config(config={"architecture": "lora", "trust_remote_code": True})).encode(),
        "config.trust_remote_code",
    ),
    "hidden-size-missing": (json.dumps(adapter_config(hidden_size=None)).encode(), "hidden_size"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_configs_name_the_field(client, hub_dirs, token, case):  # noqa: F811
    content, field = BAD_CONFIGS[case]
    response = post_upload(client, adapter_files(**{"adapter_config.json": content}), token)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == "invalid_config" and body["field"] == field
    assert_nothing_left(hub_dirs)


def test_model_name_contradicting_the_config_is_400(client, hub_dirs, token):  # noqa: F811
    files = adapter_files(**{"adapter_config.json": json.dumps(adapter_config(model_name="roberta-base")).encode()})
    response = post_upload(client, files, token)
    assert response.status_code == 400 and response.json()["field"] == "model_name"
    assert_nothing_left(hub_dirs)


@pytest.mark.parametrize(
    "name, reason",
    [("../README.md", "path separator"), ("sub/README.md", "path separator"), ("..\\README.md", "path separator"),
     ("README\x01.md", "control character"), ("README.md\x7f", "control character"), ("..", "'..'")],
)
def test_unsafe_file_names_are_400(client, hub_dirs, token, name, reason):  # noqa: F811
    """Refused, not silently rewritten (Django's parser would turn '../README.md' into 'README.md')."""
    files = [*adapter_files().items(), (name, b"x")]
    response = post_upload(client, files, token)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_filename"
    assert reason in response.json()["detail"]
    assert_nothing_left(hub_dirs)


def test_names_not_on_the_list_are_400_with_the_list(client, hub_dirs, token):  # noqa: F811
    response = post_upload(client, adapter_files(**{"config.json": b"{}"}), token)
    assert response.status_code == 400 and response.json()["code"] == "invalid_filename"
    assert "adapter_config.json" in response.json()["allowed"]
    assert_nothing_left(hub_dirs)


def test_missing_weights_is_400(client, hub_dirs, token):  # noqa: F811
    files = {"adapter_config.json": adapter_files()["adapter_config.json"]}
    response = post_upload(client, files, token)
    assert response.status_code == 400 and response.json()["code"] == "missing_file"
    assert_nothing_left(hub_dirs)


def test_declared_sha256_mismatch_is_400(client, hub_dirs, token):  # noqa: F811
    files = adapter_files()
    declared = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    declared["adapter.safetensors"] = "0" * 64
    response = post_upload(client, files, token, sha256=json.dumps(declared))
    assert response.status_code == 400 and response.json()["code"] == "digest_mismatch"
    assert response.json()["filename"] == "adapter.safetensors"
    assert_nothing_left(hub_dirs)


def test_declared_sha256_matching_is_accepted(client, hub_dirs, token):  # noqa: F811
    files = adapter_files()
    declared = {name: hashlib.sha256(content).hexdigest() for name, content in files.items()}
    assert post_upload(client, files, token, sha256=json.dumps(declared)).status_code == 201


@pytest.fixture
def service_not_reached(monkeypatch):
    """Proves a refusal happened while streaming: the upload service is never called."""
    def fail(*args, **kwargs):
        raise AssertionError("the upload service was reached")

    monkeypatch.setattr("registry.services.upload.upload_version", fail)


def test_file_over_the_limit_is_413_while_streaming(client, hub_dirs, token, settings,  # noqa: F811
                                                     service_not_reached):
    settings.HUB_MAX_FILE_BYTES = 1000
    response = post_upload(client, adapter_files(**{"README.md": b"x" * 5000}), token)
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert_nothing_left(hub_dirs)


def test_request_over_the_limit_is_413(client, hub_dirs, token, settings, service_not_reached):  # noqa: F811
    settings.HUB_MAX_UPLOAD_BYTES = 1500
    response = post_upload(client, adapter_files(), token)
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert_nothing_left(hub_dirs)


def test_total_over_the_limit_while_streaming_is_413(client, hub_dirs, token, settings,  # noqa: F811
                                                     service_not_reached):
    """The request is small enough to start, but the files add up past the limit mid-stream."""
    settings.HUB_MAX_UPLOAD_BYTES = 70_000
    settings.HUB_MAX_FILE_BYTES = 60_000
    files = adapter_files(**{"README.md": b"x" * 50_000, "head_config.json": b"y" * 50_000})
    response = post_upload(client, files, token)
    assert response.status_code == 413 and response.json()["code"] == "too_large"
    assert_nothing_left(hub_dirs)


def test_too_many_files_is_413(client, hub_dirs, token, settings, service_not_reached):  # noqa: F811
    settings.HUB_MAX_FILES = 2
    response = post_upload(client, adapter_files(**{"README.md": b"hi"}), token)
    assert response.status_code == 413 and response.json()["code"] == "too_many_files"
    assert_nothing_left(hub_dirs)


@pytest.mark.parametrize(
    "identifier, status, code",
    [("Sentiment/SST-2@ukp", 400, "invalid_identifier"), ("sentiment/sst-2", 400, "invalid_identifier"),
     ("sentiment/../x@ukp", 400, "invalid_identifier"), ("sentiment/sst-2@nobody", 404, "organisation_not_found"),
     ("nli/sst-2@ukp", 404, "task_not_found"), ("sentiment/imdb@ukp", 404, "subtask_not_found")],
)
def test_identifier_and_target_errors(client, hub_dirs, token, identifier, status, code):  # noqa: F811
    response = post_upload(client, adapter_files(), token, identifier=identifier)
    assert response.status_code == status and response.json()["code"] == code
    assert_nothing_left(hub_dirs)


@pytest.mark.parametrize(
    "fields, field",
    [({"version": ""}, "version"), ({"version": "1/2"}, "version"), ({"claimed_score": "nan"}, "claimed_score"),
     ({"visibility": "secret"}, "visibility"), ({"model_name": ""}, "model_name"), ({"sha256": "[1]"}, "sha256")],
)
def test_bad_form_fields_are_400(client, hub_dirs, token, fields, field):  # noqa: F811
    response = post_upload(client, adapter_files(), token, **fields)
    assert response.status_code == 400 and response.json()["field"] == field
    assert_nothing_left(hub_dirs)
