"""JSON configs: invalid JSON, unknown methods, remote code, required fields - each names the field."""

from __future__ import annotations

import json

import pytest

from registry.checks import check_adapter_config, check_head_config, load_json_file
from registry.errors import InvalidConfig

from .upload_helpers import SEQ_BN_CONFIG, adapter_config


def _load(tmp_path, content: bytes, name="adapter_config.json"):
    path = tmp_path / name
    path.write_bytes(content)
    return load_json_file(str(path), name)


def test_library_config_is_accepted():
    meta = check_adapter_config(adapter_config())
    assert meta.method == "seq_bn"
    assert meta.model_type == "bert" and meta.hidden_size == 32
    assert len(meta.config_hash) == 16 and int(meta.config_hash, 16) >= 0
    assert meta.config["reduction_factor"] == 16


def test_equal_configs_hash_equal_and_different_ones_do_not():
    a = check_adapter_config(adapter_config())
    b = check_adapter_config(adapter_config(name="other", model_name="bert-base-uncased"))
    c = check_adapter_config(adapter_config(config={**SEQ_BN_CONFIG, "reduction_factor": 8}))
    assert a.config_hash == b.config_hash
    assert a.config_hash != c.config_hash


def test_lora_config():
    lora = {"architecture": "lora", "r": 8, "alpha": 8, "attn_matrices": ["q", "v"], "composition_mode": "add",
            "dropout": 0.0, "dtype": None, "init_weights": "lora", "init_weights_seed": None,
            "intermediate_lora": False, "leave_out": [], "output_lora": False, "selfattn_lora": True,
            "use_dora": False, "use_gating": False, "vera_b": None, "vera_d": None}
    assert check_adapter_config(adapter_config(config=lora)).method == "lora"


@pytest.mark.parametrize(
    "content, message",
    [(b"{not json", "invalid JSON"), (b"[1, 2]", "must be a JSON object"), (b"\xff\xfe{}", "not UTF-8")],
)
def test_invalid_json(tmp_path, content, message):
    with pytest.raises(InvalidConfig, match=message) as exc:
        _load(tmp_path, content)
    assert exc.value.extra["filename"] == "adapter_config.json" and exc.value.status == 400


def test_json_too_large(tmp_path, settings):
    settings.HUB_MAX_JSON_BYTES = 10
    with pytest.raises(InvalidConfig, match="limit of 10 bytes"):
        _load(tmp_path, b'{"a": "0123456789"}')


def test_duplicate_keys_name_the_field(tmp_path):
    with pytest.raises(InvalidConfig, match="model_type: duplicate key") as exc:
        _load(tmp_path, b'{"model_type": "bert", "model_type": "gpt2"}')
    assert exc.value.extra["field"] == "model_type"


@pytest.mark.parametrize("where", ["top", "config", "nested"])
def test_remote_code_keys_name_the_field(tmp_path, where):
    data = adapter_config()
    expected = {"top": "auto_map", "config": "config.auto_map", "nested": "config.leave_out.0.trust_remote_code"}
    if where == "top":
        data["auto_map"] = {"AutoModel": "evil.Model"}
    elif where == "config":
        data["config"]["auto_map"] = {"AutoModel": "evil.Model"}
    else:
        data["config"]["leave_out"] = [{"trust_remote_code": True}]
    with pytest.raises(InvalidConfig, match="remote code") as exc:
        _load(tmp_path, json.dumps(data).encode())
    assert exc.value.extra["field"] == expected[where]


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"config": {**SEQ_BN_CONFIG, "architecture": "evil"}}, "config.architecture"),
        ({"config": {**SEQ_BN_CONFIG, "unknown_option": 1}}, "config.unknown_option"),
        ({"config": {**SEQ_BN_CONFIG, "reduction_factor": "big"}}, "config.reduction_factor"),
        ({"config": "no_such_method"}, "config.architecture"),
        ({"config": None}, "config"),
        ({"model_type": ""}, "model_type"),
        ({"hidden_size": -3}, "hidden_size"),
        ({"hidden_size": None}, "hidden_size"),
        ({"model_name": 5}, "model_name"),
    ],
    ids=["unknown-architecture", "unknown-option", "bad-value", "unknown-name", "no-config", "model-type",
         "hidden-negative", "hidden-missing", "model-name-type"],
)
def test_adapter_config_errors_name_the_field(overrides, field):
    with pytest.raises(InvalidConfig) as exc:
        check_adapter_config(adapter_config(**overrides))
    assert exc.value.extra["field"] == field
    assert field in exc.value.detail


def test_head_config():
    good = {"config": {"head_type": "classification", "num_labels": 2, "layers": 2,
                       "activation_function": "tanh", "label2id": {"a": 0, "b": 1}},
            "hidden_size": 32, "model_type": "bert"}
    assert check_head_config(good)["num_labels"] == 2
    with pytest.raises(InvalidConfig) as exc:
        check_head_config({**good, "config": {**good["config"], "num_labels": "two"}})
    assert exc.value.extra["field"] == "config.num_labels"
    with pytest.raises(InvalidConfig) as exc:
        check_head_config({**good, "config": {"num_labels": 2}})
    assert exc.value.extra["field"] == "config.head_type"
