"""The weights store on the filesystem: content-addressed keys, idempotent puts, error mapping."""

from __future__ import annotations

import hashlib

import pytest

from registry import storage
from registry.errors import StorageUnavailable

from .upload_helpers import files_under, hub_dirs  # noqa: F401


def _file(tmp_path, content: bytes):
    path = tmp_path / "blob"
    path.write_bytes(content)
    return str(path), hashlib.sha256(content).hexdigest()


def test_key_for():
    digest = "ab" + "cd" + "0" * 60
    assert storage.key_for(digest) == f"sha256/ab/cd/{digest}"
    assert storage.key_for(digest.upper()) == f"sha256/ab/cd/{digest}"
    for bad in ("", "xyz", "0" * 63, "g" * 64, "../" + "0" * 61):
        with pytest.raises(ValueError):
            storage.key_for(bad)


def test_weights_storage_is_the_alias(hub_dirs):  # noqa: F811
    from django.core.files.storage import storages

    assert storage.weights_storage() is storages["weights"]
    assert storage.weights_storage().location == str(hub_dirs["weights"])


def test_put_file_is_idempotent(hub_dirs, tmp_path):  # noqa: F811
    path, digest = _file(tmp_path, b"weights")
    key, created = storage.put_file(path, digest)
    assert created is True and key == storage.key_for(digest)
    assert (hub_dirs["weights"] / key).read_bytes() == b"weights"
    assert storage.put_file(path, digest) == (key, False)
    assert files_under(hub_dirs["weights"]) == [key]


def test_put_file_race_keeps_one_object(hub_dirs, tmp_path, monkeypatch):  # noqa: F811
    """If another upload stores the same content between exists() and save(), no second copy remains."""
    path, digest = _file(tmp_path, b"same bytes")
    key, _ = storage.put_file(path, digest)
    store = storage.weights_storage()
    real_exists = type(store).exists
    calls = []

    def stale_exists(self, name):
        calls.append(name)
        return False if len(calls) == 1 else real_exists(self, name)

    monkeypatch.setattr(type(store), "exists", stale_exists)
    assert storage.put_file(path, digest) == (key, False)
    assert files_under(hub_dirs["weights"]) == [key]


def test_filesystem_has_no_presigned_url(hub_dirs, tmp_path):  # noqa: F811
    path, digest = _file(tmp_path, b"w")
    key, _ = storage.put_file(path, digest)
    assert storage.download_url(key, "adapter.safetensors", 60) is None
    with storage.open_for_download(key) as fh:
        assert fh.read() == b"w"


def test_os_errors_become_storage_unavailable(hub_dirs, tmp_path, monkeypatch):  # noqa: F811
    path, digest = _file(tmp_path, b"w")

    def broken(self, name, content, max_length=None):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(type(storage.weights_storage()), "save", broken)
    with pytest.raises(StorageUnavailable) as exc:
        storage.put_file(path, digest)
    assert exc.value.status == 503 and exc.value.code == "storage_unavailable"
    with pytest.raises(StorageUnavailable):
        storage.open_for_download(storage.key_for("0" * 64))


def test_delete_object_is_best_effort(hub_dirs, tmp_path, monkeypatch):  # noqa: F811
    path, digest = _file(tmp_path, b"w")
    key, _ = storage.put_file(path, digest)
    assert storage.delete_object(key) is True
    assert files_under(hub_dirs["weights"]) == []

    def broken(self, name):
        raise OSError("read-only file system")

    monkeypatch.setattr(type(storage.weights_storage()), "delete", broken)
    assert storage.delete_object(key) is False
