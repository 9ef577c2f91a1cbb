"""Orphan objects (stored, never referenced) are swept; referenced or young ones never are; and an
upload that finds its object removed by a concurrent cleanup stores it again."""

from __future__ import annotations

import pytest

from registry import storage
from registry.models import VersionFile
from registry.services.orphans import sweep_orphan_objects

from .upload_helpers import (  # noqa: F401 - fixtures
    adapter_files, files_under, hub_dirs, maintainer_setup, post_upload, s3_weights,
)

pytestmark = pytest.mark.django_db


def store_orphan(tmp_path, content=b"orphan bytes") -> str:
    import hashlib

    path = tmp_path / "orphan.bin"
    path.write_bytes(content)
    key, created = storage.put_file(str(path), hashlib.sha256(content).hexdigest())
    assert created
    return key


@pytest.mark.parametrize("store", ["filesystem", "s3"])
def test_sweep_removes_only_old_unreferenced_objects(client, request, tmp_path, store):
    dirs = request.getfixturevalue("hub_dirs" if store == "filesystem" else "s3_weights")
    _, _, raw = maintainer_setup()
    assert post_upload(client, adapter_files(), raw).status_code == 201
    referenced = set(VersionFile.objects.values_list("storage_key", flat=True))
    orphan = store_orphan(tmp_path)

    assert sweep_orphan_objects() == 0  # younger than the grace period: left alone
    assert storage.object_exists(orphan)

    assert sweep_orphan_objects(grace_seconds=0) == 1
    assert not storage.object_exists(orphan)
    assert all(storage.object_exists(key) for key in referenced)
    if store == "s3":
        assert dirs["objects"]() == sorted(referenced)
    else:
        assert len(files_under(dirs["weights"])) == len(referenced)


def test_upload_restores_an_object_removed_by_a_concurrent_cleanup(client, hub_dirs, monkeypatch):
    """Upload A finds its bytes already stored (by upload B), then B's cleanup deletes them
    before A records its rows: A must store them again, never reference a missing object."""
    from registry.services import upload as upload_service

    real_store = upload_service._store

    def store_then_lose_objects(incoming, hashes):
        created = real_store(incoming, hashes)
        for sha in hashes.values():
            storage.delete_object(storage.key_for(sha))  # the concurrent cleanup wins the race
        return created

    monkeypatch.setattr(upload_service, "_store", store_then_lose_objects)
    _, _, raw = maintainer_setup()
    response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 201, response.content
    keys = list(VersionFile.objects.values_list("storage_key", flat=True))
    assert keys and all(storage.object_exists(key) for key in keys)
