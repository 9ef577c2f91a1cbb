"""read_adapter_config_json refuses remote-code keys anywhere in adapter_config.json, as the hub does.

The hub (registry.checks.configs.load_json_file) looks for adapters_client.rules.REMOTE_CODE_KEYS
in the whole file at any depth; before, the client looked only inside "config", so a file with a
top-level ``auto_map`` loaded on the client and was refused by the hub.
"""

from __future__ import annotations

import json

import pytest

from adapters_client import rules
from adapters_client.configs.files import build_adapter_config_json, read_adapter_config_json
from adapters_client.errors import InvalidAdapterConfig


def clean() -> dict:
    data = build_adapter_config_json("seq_bn", "sst-2", {"hidden_size": 32, "model_type": "bert"},
                                     model_class="BertAdapterModel", model_name="bert-base-uncased")
    return json.loads(json.dumps(data))  # as read from disk


def test_a_clean_file_is_read():
    config, meta = read_adapter_config_json(clean())
    assert meta["name"] == "sst-2" and meta["model_type"] == "bert"
    assert config.to_dict()["reduction_factor"] == 16


@pytest.mark.parametrize("key", sorted(rules.REMOTE_CODE_KEYS))
def test_top_level_remote_code_key_is_refused(key):
    data = {**clean(), key: {"AutoModel": "evil.Model"}}
    with pytest.raises(InvalidAdapterConfig) as caught:
        read_adapter_config_json(data)
    assert caught.value.code == "invalid_config"
    assert caught.value.field == key


@pytest.mark.parametrize(
    ("place", "expected_field"),
    [
        (lambda d: d.update(extra={"nested": [{"Trust_Remote_Code": True}]}), "extra.nested.0.Trust_Remote_Code"),
        (lambda d: d["config"].update(auto_map={"x": "y"}), "config.auto_map"),
        (lambda d: d.update(AUTO_MAP="a.B"), "AUTO_MAP"),
    ],
)
def test_nested_or_cased_keys_are_refused_with_their_path(place, expected_field):
    data = clean()
    place(data)
    with pytest.raises(InvalidAdapterConfig) as caught:
        read_adapter_config_json(data)
    assert caught.value.field == expected_field
    assert rules.find_remote_code_key(data) == expected_field  # the one rule the hub applies to the same file


def test_key_names_only_not_values():
    data = {**clean(), "description": "no auto_map here", "tags": ["trust_remote_code"]}
    _, meta = read_adapter_config_json(data)
    assert meta["name"] == "sst-2"
