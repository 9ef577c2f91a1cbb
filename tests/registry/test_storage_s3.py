"""The weights store on S3 (moto over real HTTP): puts, presigned URLs, an unreachable store."""

from __future__ import annotations

import hashlib

import pytest
import requests
from botocore.config import Config

from registry import localcache, storage
from registry.errors import StorageUnavailable
from tests.services import free_port

from .upload_helpers import hub_dirs, s3_storage_settings, s3_weights  # noqa: F401


def _file(tmp_path, content: bytes):
    path = tmp_path / "blob"
    path.write_bytes(content)
    return str(path), hashlib.sha256(content).hexdigest()


def test_put_is_content_addressed_and_idempotent(s3_weights, tmp_path):  # noqa: F811
    path, digest = _file(tmp_path, b"\x00weights\xff" * 1000)
    key, created = storage.put_file(path, digest)
    assert created and key == f"sha256/{digest[:2]}/{digest[2:4]}/{digest}"
    assert storage.put_file(path, digest) == (key, False)
    assert s3_weights["objects"]() == [key]
    body = s3_weights["client"].get_object(Bucket=s3_weights["bucket"], Key=key)["Body"].read()
    assert hashlib.sha256(body).hexdigest() == digest


def test_presigned_url_downloads_the_bytes_and_expires_short(s3_weights, tmp_path):  # noqa: F811
    path, digest = _file(tmp_path, b"tensor bytes")
    key, _ = storage.put_file(path, digest)
    url = storage.download_url(key, "adapter.safetensors", 30)
    assert url.startswith("http://127.0.0.1:") and "X-Amz-Signature=" in url and "X-Amz-Expires=30" in url
    response = requests.get(url, timeout=10)
    assert response.status_code == 200 and response.content == b"tensor bytes"
    assert 'filename="adapter.safetensors"' in response.headers["Content-Disposition"]


def test_unreachable_store_is_storage_unavailable(settings, hub_dirs, tmp_path):  # noqa: F811
    settings.STORAGES = {
        **settings.STORAGES,
        "weights": s3_storage_settings(
            f"http://127.0.0.1:{free_port()}", "nowhere",
            client_config=Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=1),
        ),
    }
    path, digest = _file(tmp_path, b"w")
    with pytest.raises(StorageUnavailable) as exc:
        storage.put_file(path, digest)
    assert exc.value.status == 503 and exc.value.retry_after > 0


def test_missing_bucket_is_storage_unavailable(settings, s3_server, hub_dirs, tmp_path):  # noqa: F811
    settings.STORAGES = {**settings.STORAGES, "weights": s3_storage_settings(s3_server.endpoint_url, "no-bucket")}
    path, digest = _file(tmp_path, b"w")
    with pytest.raises(StorageUnavailable):
        storage.put_file(path, digest)


def test_signed_urls_are_reused_for_a_quarter_of_their_life_and_per_bucket(s3_weights, settings, s3_server,
                                                                            tmp_path, monkeypatch):  # noqa: F811
    path, digest = _file(tmp_path, b"reused")
    key, _ = storage.put_file(path, digest)
    clock = [1000.0]
    monkeypatch.setattr(localcache.time, "monotonic", lambda: clock[0])
    storage._signed.clear()
    store = storage.weights_storage()
    signed = []
    real_url = store.url
    monkeypatch.setattr(store, "url", lambda *a, **k: signed.append(a[0]) or real_url(*a, **k))
    first = storage.download_url(key, "adapter.safetensors", 40)
    clock[0] += 9.9  # within 40 / 4 seconds: the same URL, still valid for at least 30 s
    assert storage.download_url(key, "adapter.safetensors", 40) == first and len(signed) == 1
    storage.download_url(key, "other.bin", 40)  # another file name: its own URL
    storage.download_url(key, "adapter.safetensors", 60)
    assert len(signed) == 3
    clock[0] += 0.2  # past the quarter: signed anew
    assert requests.get(storage.download_url(key, "adapter.safetensors", 40), timeout=10).content == b"reused"
    assert len(signed) == 4
    other_bucket = "other-" + s3_weights["bucket"][-8:]
    s3_weights["client"].create_bucket(Bucket=other_bucket)
    settings.STORAGES = {**settings.STORAGES, "weights": s3_storage_settings(s3_server.endpoint_url, other_bucket)}
    assert other_bucket in storage.download_url(key, "adapter.safetensors", 40)
