"""File names, pickle names, size limits, digests and the file set of a folder."""

from __future__ import annotations

import hashlib

import pytest

from registry.checks import (
    ALLOWED_FILENAMES, check_declared_digests, check_file_set, check_filename, check_limits, sha256_file,
    version_digest,
)
from registry.errors import DigestMismatch, InvalidFilename, InvalidInput, PickleNotAccepted, TooLarge, TooManyFiles


@pytest.mark.parametrize("name", ALLOWED_FILENAMES)
def test_allowed_names(name):
    assert check_filename(name) == name


@pytest.mark.parametrize(
    "name",
    ["../adapter.safetensors", "a/adapter.safetensors", "a\\b.json", "..", "adapter..safetensors",
     "adapter\x00.safetensors", "adapter\n.json", "adapter\x1b.json", "README\u202e.md", ""],
)
def test_unsafe_names_are_invalid_filename(name):
    with pytest.raises(InvalidFilename) as exc:
        check_filename(name)
    assert exc.value.code == "invalid_filename" and exc.value.status == 400
    assert "allowed" not in exc.value.extra


@pytest.mark.parametrize("name", ["pytorch_adapter.bin", "model.pt", "x.ckpt", "w.pkl", "w.PTH", "a.pickle"])
def test_pickle_names_are_415(name):
    with pytest.raises(PickleNotAccepted) as exc:
        check_filename(name)
    assert exc.value.status == 415


def test_other_names_list_the_allowed_ones():
    with pytest.raises(InvalidFilename) as exc:
        check_filename("config.json")
    assert exc.value.extra["allowed"] == list(ALLOWED_FILENAMES)
    assert "adapter.safetensors" in exc.value.detail


def test_file_set_requires_the_adapter_pair():
    with pytest.raises(InvalidInput, match="adapter.safetensors") as exc:
        check_file_set(["adapter_config.json"])
    assert exc.value.code == "missing_file"


def test_file_set_pairs_go_together():
    with pytest.raises(InvalidInput, match="model_head.safetensors is missing"):
        check_file_set(["adapter_config.json", "adapter.safetensors", "head_config.json"])


def test_file_set_refuses_duplicates():
    with pytest.raises(InvalidFilename, match="sent twice"):
        check_file_set(["adapter_config.json", "adapter.safetensors", "adapter.safetensors"])


def test_file_set_accepts_a_full_folder():
    names = ["README.md", "adapter.safetensors", "adapter_config.json", "head_config.json", "model_head.safetensors"]
    assert check_file_set(reversed(names)) == names


def test_limits(settings):
    settings.HUB_MAX_FILES = 2
    settings.HUB_MAX_FILE_BYTES = 10
    settings.HUB_MAX_UPLOAD_BYTES = 15
    check_limits({"a": 10, "b": 5})
    with pytest.raises(TooManyFiles) as exc:
        check_limits({"a": 1, "b": 1, "c": 1})
    assert exc.value.status == 413
    with pytest.raises(TooLarge, match="'a' has 11 bytes"):
        check_limits({"a": 11})
    with pytest.raises(TooLarge, match="16 bytes"):
        check_limits({"a": 10, "b": 6})


def test_sha256_file(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 3_000_000)
    assert sha256_file(str(path)) == (hashlib.sha256(b"x" * 3_000_000).hexdigest(), 3_000_000)


def test_version_digest_is_order_independent_and_content_sensitive():
    a = version_digest({"x": "1" * 64, "y": "2" * 64})
    assert a == version_digest({"y": "2" * 64, "x": "1" * 64})
    assert a != version_digest({"x": "1" * 64, "y": "3" * 64})
    assert a != version_digest({"x": "2" * 64, "y": "1" * 64})


def test_declared_digests():
    actual = {"a": "ab" * 32}
    check_declared_digests(actual, {"a": "AB" * 32})
    check_declared_digests(actual, None)
    with pytest.raises(DigestMismatch) as exc:
        check_declared_digests(actual, {"a": "cd" * 32})
    assert exc.value.code == "digest_mismatch" and exc.value.extra["filename"] == "a"
    with pytest.raises(InvalidInput, match="not sent"):
        check_declared_digests(actual, {"b": "cd" * 32})
