"""One cache, every path: load, download, model.load_adapter and the CLI share it; offline and outage
fallbacks; hub errors keep their types through load_adapter."""

from __future__ import annotations

import warnings

import huggingface_hub
import pytest
import torch

import adapters_client
from adapters_client import (
    AdapterNotFound, AmbiguousIdentifier, ChecksumMismatch, HubError, InvalidAdapterConfig, OfflineCacheMiss,
)
from adapters_client.hub import CacheFallbackWarning
from adapters_client.cli import main
from adapters_client.errors import AdapterNameNotFound
from adapters_client.hub_api import HubClient

from .engine_helpers import tiny_inputs, tiny_model
from .fake_hub import FakeHub

IDENT = "sentiment/sst-2@demo"


@pytest.fixture
def hub():
    server = FakeHub().start()
    yield server
    server.stop()


@pytest.fixture
def env(tmp_path, monkeypatch):
    monkeypatch.setenv("ADAPTERS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ADAPTERS_OFFLINE", raising=False)
    monkeypatch.delenv("ADAPTERS_HUB_URL", raising=False)
    monkeypatch.setenv("ADAPTERS_HOME", str(tmp_path / "home"))
    return tmp_path


@pytest.fixture
def published(env, hub):
    """A tiny backbone saved in a folder and an adapter (with head) on the fake hub; the expected logits."""
    backbone = env / "tiny-bert"
    base = tiny_model()
    base.base_model.save_pretrained(backbone)
    model = adapters_client.AutoAdapterModel.from_pretrained(str(backbone))
    model.add_adapter("sst-2", config="seq_bn[reduction_factor=4]")
    model.add_classification_head("sst-2", num_labels=2)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "adapters." in name or "heads." in name:
                param.normal_(std=0.2)
    model.eval().set_active_adapters("sst-2")
    with torch.no_grad():
        expected = model(**tiny_inputs()).logits
    model.save_adapter(str(env / "out"), "sst-2")
    files = {p.name: p.read_bytes() for p in (env / "out").iterdir()}
    resolution = hub.add_version(IDENT, files, model_name="tiny-bert", method="seq_bn", config_hash="abc")
    return backbone, expected, resolution


def _logits(model):
    with torch.no_grad():
        return model.eval()(**tiny_inputs()).logits


def _backbone(path):
    return adapters_client.AutoAdapterModel.from_pretrained(str(path))


def _hits(hub):
    return len(hub.hits)


def test_load_then_every_entry_point_offline(hub, published, monkeypatch, capsys):
    backbone, expected, resolution = published
    client = HubClient(base_url=hub.url)
    torch.testing.assert_close(_logits(adapters_client.load(IDENT, hub=client, model=_backbone(backbone))), expected)
    monkeypatch.setenv("ADAPTERS_OFFLINE", "1")
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _no_hf)
    before = _hits(hub)
    fresh = adapters_client.AutoAdapterModel.from_pretrained(str(backbone))
    assert fresh.load_adapter(IDENT, set_active=True) == "sst-2"  # the model's local path is no filter
    torch.testing.assert_close(_logits(fresh), expected)
    other = adapters_client.AutoAdapterModel.from_pretrained(str(backbone))
    other.load_adapter("sentiment/sst-2", set_active=True)  # without the organisation: one cached match
    torch.testing.assert_close(_logits(other), expected)
    assert adapters_client.download("sentiment/sst-2").name == resolution["digest"]
    assert adapters_client.resolve("sentiment/sst-2@demo", model_name="tiny-bert", config="seq_bn")["version"] == "1"
    with pytest.raises(OfflineCacheMiss):
        adapters_client.resolve("sentiment/sst-2@demo", model_name="roberta-base")
    assert main(["download", "sentiment/sst-2", "--json"]) == 0
    assert resolution["digest"] in capsys.readouterr().out
    assert _hits(hub) == before  # nothing touched the network
    with pytest.raises(OfflineCacheMiss):
        adapters_client.download("sentiment/sst-2@other")
    with pytest.raises(OfflineCacheMiss):
        adapters_client.download(IDENT, version="2")


def _no_hf(*args, **kwargs):
    raise AssertionError("the Hugging Face Hub must not be asked")


def test_load_adapter_first_then_download_and_load_offline(hub, published, monkeypatch):
    backbone, expected, resolution = published
    model = adapters_client.AutoAdapterModel.from_pretrained(str(backbone))
    model.load_adapter(IDENT, hub=HubClient(base_url=hub.url), set_active=True)
    torch.testing.assert_close(_logits(model), expected)
    monkeypatch.setenv("ADAPTERS_OFFLINE", "1")
    assert adapters_client.download(IDENT).name == resolution["digest"]
    torch.testing.assert_close(_logits(adapters_client.load("sentiment/sst-2", model=_backbone(backbone))), expected)


def test_an_identifier_without_org_is_ambiguous_when_two_orgs_are_cached(hub, env, monkeypatch):
    files = {"adapter_config.json": b"{}", "adapter.safetensors": b"x" * 10}
    hub.add_version("sentiment/sst-2@a", files)
    hub.add_version("sentiment/sst-2@b", {**files, "adapter.safetensors": b"y" * 10})
    for org in ("a", "b"):
        adapters_client.download(f"sentiment/sst-2@{org}", hub=HubClient(base_url=hub.url), progress=False)
    monkeypatch.setenv("ADAPTERS_OFFLINE", "1")
    with pytest.raises(AmbiguousIdentifier) as info:
        adapters_client.download("sentiment/sst-2")
    assert "sentiment/sst-2@a" in str(info.value) and "sentiment/sst-2@b" in str(info.value)
    assert (adapters_client.download("sentiment/sst-2@b") / "adapter.safetensors").read_bytes() == b"y" * 10


def test_a_dead_hub_falls_back_to_the_cache_with_a_warning(hub, published):
    backbone, expected, resolution = published
    client = HubClient(base_url=hub.url)
    adapters_client.download(IDENT, hub=client, progress=False)
    hub.fail_next["/api/v1/resolve"] = [(503, {"code": "service_unavailable", "detail": "db down"})]
    with pytest.warns(CacheFallbackWarning, match="503"):
        assert adapters_client.download(IDENT, hub=client).name == resolution["digest"]
    hub.stop()
    with pytest.warns(CacheFallbackWarning, match="cannot reach the hub"):
        assert adapters_client.resolve(IDENT, hub=client)["digest"] == resolution["digest"]
    model = adapters_client.AutoAdapterModel.from_pretrained(str(backbone))
    with pytest.warns(CacheFallbackWarning):
        model.load_adapter(IDENT, hub=client, set_active=True)
    torch.testing.assert_close(_logits(model), expected)
    with pytest.raises(HubError) as info:  # nothing cached for this one: the hub's error
        adapters_client.download("nli/rte@demo", hub=client)
    assert info.value.status is None


def test_a_refusal_never_falls_back(hub, published):
    client = HubClient(base_url=hub.url)
    adapters_client.download(IDENT, hub=client, progress=False)
    hub.fail_next["/api/v1/resolve"] = [(404, {"code": "adapter_not_found", "detail": "gone"})]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        with pytest.raises(AdapterNotFound):
            adapters_client.download(IDENT, hub=client)


def test_errors_keep_their_types_through_load_adapter(hub, published, monkeypatch):
    backbone, _, resolution = published
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _no_hf)
    client = HubClient(base_url=hub.url)
    model = adapters_client.AutoAdapterModel.from_pretrained(str(backbone))
    hub.fail_next["/api/v1/resolve"] = [(503, {"code": "service_unavailable", "detail": "db down"})]
    with pytest.raises(HubError) as info:
        model.load_adapter(IDENT, hub=client)
    assert (info.value.status, info.value.hub_code) == (503, "service_unavailable")
    weights = next(f["sha256"] for f in resolution["files"] if f["name"] == "adapter.safetensors")
    hub.corrupt.add(weights)
    with pytest.raises(ChecksumMismatch):
        model.load_adapter(IDENT, hub=client)
    hub.corrupt.clear()
    hub.resolutions["sentiment/sst2@demo"] = {"code": "adapter_not_found", "detail": "no adapter 'sentiment/sst2@demo'",
                                              "suggestions": [IDENT], "available": [], "_status": 404}
    with pytest.raises(AdapterNotFound) as info:
        model.load_adapter("sentiment/sst2@demo", hub=client)
    assert f"did you mean '{IDENT}'?" in str(info.value)
    assert "Repo id" not in str(info.value) and info.value.details["suggestions"] == [IDENT]
    monkeypatch.setenv("ADAPTERS_OFFLINE", "1")
    with pytest.raises(OfflineCacheMiss):
        model.load_adapter("sentiment/imdb@demo")
    assert not model.has_adapter("sst-2")


def test_plain_owner_name_tries_hugging_face_only_when_the_hub_has_no_match(hub, env, monkeypatch, tmp_path):
    asked = []
    hf_folder = tmp_path / "hf"
    hf_folder.mkdir()

    def fake_snapshot(repo_id, **kwargs):
        asked.append(repo_id)
        return str(hf_folder)

    monkeypatch.setattr(huggingface_hub, "snapshot_download", fake_snapshot)
    from adapters_client.formats import resolve_adapter_folder

    assert resolve_adapter_folder("someone/adapter", hub=HubClient(base_url=hub.url)) == hf_folder
    assert asked == ["someone/adapter"] and "/api/v1/resolve" in hub.hits
    hits = _hits(hub)
    assert resolve_adapter_folder("AdapterHub/bert-pf-sst2") == hf_folder  # not an identifier: HF only
    assert _hits(hub) == hits
    monkeypatch.setattr(huggingface_hub, "snapshot_download", _hf_missing)
    with pytest.raises(AdapterNotFound, match="no adapter someone/adapter"):  # both failed: the hub's error
        resolve_adapter_folder("someone/adapter", hub=HubClient(base_url=hub.url))
    with pytest.raises(AdapterNotFound, match="Hugging Face"):
        resolve_adapter_folder("AdapterHub/missing")


def _hf_missing(repo_id, **kwargs):
    raise OSError(f"{repo_id} not found")


def test_a_missing_adapter_name_is_a_key_error():
    model = tiny_model()
    with pytest.raises(KeyError) as info:
        model.delete_adapter("ghost")
    assert isinstance(info.value, AdapterNameNotFound) and isinstance(info.value, InvalidAdapterConfig)
    assert info.value.code == "adapter_name_not_found" and str(info.value) == "no adapter named 'ghost'"
    with pytest.raises(AdapterNameNotFound):
        model.save_adapter("/tmp/never-written", "ghost")
