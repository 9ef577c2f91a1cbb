"""The client's crash-safe cache, checksums, offline mode and hub error mapping (real HTTP)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import adapters_client
from adapters_client import (
    AdapterNotFound, AmbiguousIdentifier, ChecksumMismatch, HubError, InvalidIdentifier, OfflineCacheMiss,
)
from adapters_client.hub_api import HubClient

from .fake_hub import FakeHub

ROOT = Path(__file__).resolve().parents[2]
FILES = {"adapter_config.json": b'{"config": {"architecture": "bottleneck"}}', "adapter.safetensors": os.urandom(300_000)}


@pytest.fixture
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADAPTERS_OFFLINE", raising=False)
    return tmp_path / "cache"


def client(hub):
    return HubClient(base_url=hub.url)


def leftovers(cache_root: Path) -> list[Path]:
    return [p for p in (cache_root / "tmp").iterdir()] if (cache_root / "tmp").exists() else []


def test_download_verifies_and_reuses_the_cache(hub, cache):
    hub.add_version("sentiment/sst-2@ukp", FILES)
    folder = adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    file_hits = len([h for h in hub.hits if h.startswith("/files/")])
    again = adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    assert again == folder
    assert len([h for h in hub.hits if h.startswith("/files/")]) == file_hits  # nothing fetched twice
    assert leftovers(cache) == []


@pytest.mark.parametrize("fault", ["corrupt", "truncate"])
def test_bad_bytes_raise_checksum_mismatch_and_leave_nothing(hub, cache, fault):
    resolution = hub.add_version("sentiment/sst-2@ukp", FILES)
    bad = next(f["sha256"] for f in resolution["files"] if f["name"] == "adapter.safetensors")
    getattr(hub, fault).add(bad)
    with pytest.raises(ChecksumMismatch) as info:
        adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    assert info.value.code == "checksum_mismatch"
    assert not (cache / "blobs" / bad).exists()
    assert leftovers(cache) == []
    assert not (cache / "snapshots" / resolution["digest"]).exists()
    getattr(hub, fault).clear()  # the cache is intact: a clean retry works
    folder = adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    assert (folder / "adapter.safetensors").read_bytes() == FILES["adapter.safetensors"]


DOWNLOAD_SCRIPT = """
import sys, adapters_client
from adapters_client.hub_api import HubClient
folder = adapters_client.download(sys.argv[2], hub=HubClient(base_url=sys.argv[1]), progress=False)
print(folder)
"""


def run_client(hub, cache, identifier="sentiment/sst-2@ukp"):
    env = {**os.environ, "ADAPTERS_CACHE": str(cache)}
    return subprocess.Popen([sys.executable, "-c", DOWNLOAD_SCRIPT, hub.url, identifier], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=ROOT)


def test_client_killed_mid_download_leaves_no_usable_partial_file(hub, cache):
    resolution = hub.add_version("sentiment/sst-2@ukp", FILES)
    hub.delay_per_chunk = 0.02  # ~1.5 s for the weights file
    proc = run_client(hub, cache)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and not any((cache / "tmp").glob("*.part")):
        time.sleep(0.05)
    assert any((cache / "tmp").glob("*.part")), "the download never started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    weights = next(f for f in resolution["files"] if f["name"] == "adapter.safetensors")
    assert not (cache / "blobs" / weights["sha256"]).exists()
    assert not (cache / "snapshots" / resolution["digest"]).exists()
    hub.delay_per_chunk = 0
    folder = adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    assert (folder / "adapter.safetensors").read_bytes() == FILES["adapter.safetensors"]


def test_two_clients_at_once_share_one_verified_blob(hub, cache):
    resolution = hub.add_version("sentiment/sst-2@ukp", FILES)
    hub.delay_per_chunk = 0.002
    procs = [run_client(hub, cache) for _ in range(2)]
    outs = [p.communicate(timeout=60) for p in procs]
    assert all(p.returncode == 0 for p in procs), [o[1] for o in outs]
    folders = {o[0].strip() for o in outs}
    assert len(folders) == 1
    assert sorted(p.name for p in (cache / "blobs").iterdir()) == sorted(f["sha256"] for f in resolution["files"])
    assert leftovers(cache) == []


def test_offline_serves_verified_cache_and_never_touches_the_network(hub, cache, monkeypatch):
    hub.add_version("sentiment/sst-2@ukp", FILES)
    folder = adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    hub.stop()
    monkeypatch.setenv("ADAPTERS_OFFLINE", "1")
    hits = len(hub.hits)
    assert adapters_client.download("sentiment/sst-2@ukp", hub=client(hub)) == folder
    assert adapters_client.resolve("sentiment/sst-2@ukp", hub=client(hub))["digest"] == folder.name
    with pytest.raises(OfflineCacheMiss) as info:
        adapters_client.download("nli/multinli@ukp", hub=client(hub))
    assert info.value.code == "offline_cache_miss"
    assert len(hub.hits) == hits


def test_hub_errors_are_typed(hub, cache):
    with pytest.raises(AdapterNotFound) as info:
        adapters_client.resolve("sentiment/missing", hub=client(hub))
    assert info.value.status == 404
    hub.resolutions["nli/rte"] = {"code": "ambiguous_identifier", "detail": "2 candidates", "candidates": ["a", "b"],
                                  "_status": 409}
    with pytest.raises(AmbiguousIdentifier) as info:
        adapters_client.resolve("nli/rte", hub=client(hub))
    assert info.value.details["candidates"] == ["a", "b"]
    hub.resolutions["nli/boom"] = {"code": "service_unavailable", "detail": "db down", "_status": 503}
    with pytest.raises(HubError) as info:
        adapters_client.resolve("nli/boom", hub=client(hub))
    assert (info.value.status, info.value.hub_code) == (503, "service_unavailable")


def test_unreachable_hub_and_bad_identifier(cache):
    with pytest.raises(HubError) as info:
        adapters_client.resolve("sentiment/sst-2", hub=HubClient(base_url="http://127.0.0.1:1"))
    assert "cannot reach the hub" in str(info.value)
    with pytest.raises(InvalidIdentifier):
        adapters_client.download("not an identifier")


def test_entry_points_are_functions_even_after_submodules_are_imported():
    import adapters_client.cache  # noqa: F401
    import adapters_client.hub_api  # noqa: F401

    for name in ("resolve", "download", "push"):
        assert getattr(adapters_client, name).__module__ == "adapters_client.hub"
    assert adapters_client.load.__module__ == "adapters_client.api"


def test_the_hub_entry_points_import_neither_torch_nor_the_engine():
    code = ("import sys, adapters_client.hub, adapters_client.cli.commands; "
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith(('torch.', 'transformers', "
            "'adapters_client.engine', 'adapters_client.formats', 'adapters_client.model'))); print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_direct_urls_skip_the_hub_and_carry_no_hub_credentials(hub, cache):
    hub.direct = True
    resolution = hub.add_version("sentiment/sst-2@ukp", FILES)
    folder = adapters_client.download("sentiment/sst-2@ukp", hub=HubClient(base_url=hub.url, token="secret"),
                                      progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    assert not [h for h in hub.hits if h.startswith("/files/")]  # every file came from its direct URL
    assert sorted(h for h in hub.hits if h.startswith("/objects/")) == sorted(
        f"/objects/{f['sha256']}" for f in resolution["files"])
    assert hub.object_headers and all("Authorization" not in h for h in hub.object_headers)
    refs = list((cache / "refs").glob("*.json"))
    assert refs and all("direct_url" not in p.read_text() and "/objects/" not in p.read_text() for p in refs)


@pytest.mark.parametrize("status", [403, 500])
def test_a_refused_direct_url_falls_back_to_the_hub_download(hub, cache, status):
    hub.direct, hub.objects_status = True, status
    hub.add_version("sentiment/sst-2@ukp", FILES)
    folder = adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == FILES
    assert len([h for h in hub.hits if h.startswith("/objects/")]) == len(FILES)
    assert len([h for h in hub.hits if h.startswith("/files/")]) == len(FILES)
    assert leftovers(cache) == []


def test_corrupt_bytes_from_a_direct_url_are_a_checksum_mismatch(hub, cache):
    hub.direct = True
    resolution = hub.add_version("sentiment/sst-2@ukp", FILES)
    bad = next(f["sha256"] for f in resolution["files"] if f["name"] == "adapter.safetensors")
    hub.corrupt.add(bad)
    with pytest.raises(ChecksumMismatch):
        adapters_client.download("sentiment/sst-2@ukp", hub=client(hub), progress=False)
    assert not (cache / "blobs" / bad).exists() and leftovers(cache) == []
    assert not [h for h in hub.hits if h.startswith("/files/")]  # a bad object is not retried elsewhere
