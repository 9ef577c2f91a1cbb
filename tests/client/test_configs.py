"""Method configs: parsing, aliases, overrides, validation errors, hashing and round-trips."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from adapters_client.configs import (
    ADAPTER_CONFIGS,
    ALIASES,
    BnConfig,
    DoubleSeqBnConfig,
    IA3Config,
    LoRAConfig,
    ParBnConfig,
    PrefixTuningConfig,
    PromptTuningConfig,
    SeqBnConfig,
    build_adapter_config_json,
    config_hash,
    load_config,
    load_fusion_config,
    method_name,
    read_adapter_config_json,
    read_fusion_config_json,
)
from adapters_client.errors import IncompatibleAdapter, InvalidAdapterConfig


def test_configs_import_without_torch():
    code = (
        "import sys; sys.modules['torch'] = None; sys.modules['transformers'] = None\n"
        "import adapters_client.configs as c\n"
        "print(c.config_hash('lora[r=4]'))"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == config_hash(LoRAConfig(r=4))


@pytest.mark.parametrize(
    "name, cls, checks",
    [
        ("seq_bn", SeqBnConfig, {"reduction_factor": 16, "non_linearity": "relu", "original_ln_before": True,
                                 "original_ln_after": True, "residual_before_ln": True, "mh_adapter": False}),
        ("double_seq_bn", DoubleSeqBnConfig, {"mh_adapter": True, "output_adapter": True, "non_linearity": "swish",
                                              "original_ln_before": False}),
        ("par_bn", ParBnConfig, {"reduction_factor": 2, "scaling": 4.0, "is_parallel": True,
                                 "init_weights": "mam_adapter"}),
        ("lora", LoRAConfig, {"r": 8, "alpha": 8, "attn_matrices": ["q", "v"], "composition_mode": "add"}),
        ("ia3", IA3Config, {"r": 1, "attn_matrices": ["k", "v"], "composition_mode": "scale",
                            "intermediate_lora": True, "init_weights": "ia3"}),
        ("prefix_tuning", PrefixTuningConfig, {"prefix_length": 30, "bottleneck_size": 512, "flat": False}),
        ("prompt_tuning", PromptTuningConfig, {"prompt_length": 10, "combine": "prefix"}),
    ],
)
def test_named_configs_have_library_defaults(name, cls, checks):
    config = load_config(name)
    assert type(config) is cls
    for key, value in checks.items():
        assert config[key] == value, key


@pytest.mark.parametrize("alias, target", sorted(ALIASES.items()))
def test_aliases_resolve_to_the_same_config(alias, target):
    assert load_config(alias) == load_config(target)
    assert config_hash(alias) == config_hash(target)


def test_names_are_case_insensitive():
    assert load_config("Pfeiffer") == SeqBnConfig()


def test_override_strings():
    assert load_config("lora[r=16,alpha=16]") == LoRAConfig(r=16, alpha=16)
    config = load_config("seq_bn[reduction_factor=8,non_linearity=gelu]")
    assert (config.reduction_factor, config.non_linearity) == (8, "gelu")
    quoted = load_config("seq_bn[non_linearity='gelu', leave_out=[0, 1]]")
    assert quoted.leave_out == [0, 1] and quoted.non_linearity == "gelu"
    assert load_config("lora[attn_matrices=['q','k','v'],intermediate_lora=true]").intermediate_lora is True
    assert load_config("prefix_tuning[flat=True]").flat is True


def test_overrides_as_keyword_arguments():
    assert load_config("lora", r=4).r == 4


@pytest.mark.parametrize(
    "spec, field",
    [
        ("lora[rank=4]", "rank"),
        ("lora[r=0]", "r"),
        ("lora[r=2.5]", "r"),
        ("lora[attn_matrices=['x']]", "attn_matrices"),
        ("lora[composition_mode=mul]", "composition_mode"),
        ("ia3[r=2]", "r"),
        ("seq_bn[reduction_factor=-1]", "reduction_factor"),
        ("seq_bn[non_linearity=banana]", "non_linearity"),
        ("seq_bn[mh_adapter=1]", "mh_adapter"),
        ("seq_bn[leave_out=[-1]]", "leave_out"),
        ("seq_bn[dropout=2.0]", "dropout"),
        ("seq_bn[scaling=big]", "scaling"),
        ("seq_bn[residual_before_ln=maybe]", "residual_before_ln"),
        ("prefix_tuning[prefix_length=0]", "prefix_length"),
        ("prompt_tuning[prompt_init=from_string]", "prompt_init_text"),
        ("prompt_tuning[combine=suffix]", "combine"),
        ("lora[r=4,r=5]", "r"),
        ("nonsense", "architecture"),
        ("seq_bn|par_bn", "configs"),  # a config union of two bottlenecks at one place (test_config_unions.py)
        ("lora[r=4", "config"),
        ("lora[=4]", "config"),
        ("lora[r=@@]", "r"),
    ],
)
def test_invalid_configs_name_the_field(spec, field):
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config(spec)
    assert info.value.field == field
    assert info.value.code == "invalid_config"


def test_invalid_types():
    for bad in (None, 12, ["lora"]):
        with pytest.raises(InvalidAdapterConfig):
            load_config(bad)


def test_dict_round_trip_for_every_name():
    for name in ADAPTER_CONFIGS:
        config = load_config(name)
        data = json.loads(json.dumps(config.to_dict()))
        again = load_config(data)
        assert again == config and again.to_dict() == config.to_dict()
        assert config_hash(data) == config_hash(config)


def test_bottleneck_dict_has_no_architecture_key_and_loads_as_bnconfig():
    data = SeqBnConfig().to_dict()
    assert "architecture" not in data
    assert isinstance(load_config(data), BnConfig)
    assert isinstance(load_config({**data, "architecture": "bottleneck"}), BnConfig)


def test_dict_errors_name_the_key():
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config({**LoRAConfig().to_dict(), "rank": 4})
    assert info.value.field == "rank"
    missing = SeqBnConfig().to_dict()
    del missing["reduction_factor"]
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config(missing)
    assert info.value.field == "reduction_factor"
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config({"architecture": "not_a_method", "r": 1})
    assert info.value.field == "architecture"


@pytest.mark.parametrize("key", ["auto_map", "trust_remote_code"])
def test_remote_code_keys_are_refused(key):
    with pytest.raises(InvalidAdapterConfig) as info:
        load_config({**LoRAConfig().to_dict(), key: {"AutoModel": "evil.Model"}})
    assert info.value.field == key and "remote code" in str(info.value)


def test_legacy_invertible_adapter_key():
    data = {**SeqBnConfig().to_dict(), "invertible_adapter": {"block_type": "nice", "reduction_factor": 2}}
    del data["inv_adapter"], data["inv_adapter_reduction_factor"]
    config = load_config(data)
    assert config.inv_adapter == "nice" and config.inv_adapter_reduction_factor == 2


def test_configs_are_immutable_and_replace_validates():
    config = LoRAConfig()
    with pytest.raises(Exception):
        config.r = 4
    assert config.replace(r=4).r == 4 and config.r == 8
    with pytest.raises(InvalidAdapterConfig):
        config.replace(r=-1)
    with pytest.raises(InvalidAdapterConfig):
        config.replace(unknown=1)


def test_to_dict_is_a_copy():
    config = SeqBnConfig(leave_out=[1])
    config.to_dict()["leave_out"].append(5)
    assert config.leave_out == [1]


def test_hash_equal_for_equivalent_configs():
    assert config_hash(IA3Config()) == config_hash(LoRAConfig(**IA3Config().to_dict()))
    assert config_hash("seq_bn[reduction_factor=16.0]") == config_hash("seq_bn")
    assert config_hash("seq_bn[leave_out=[1,0,1]]") == config_hash("seq_bn[leave_out=[0,1]]")
    assert config_hash("lora[attn_matrices=['v','q']]") == config_hash("lora")
    assert config_hash("seq_bn[non_linearity=ReLU]") == config_hash("seq_bn")
    assert config_hash("seq_bn[phm_dim=8]") == config_hash("seq_bn")  # phm fields unused without phm_layer
    assert config_hash(SeqBnConfig().to_dict()) == config_hash("pfeiffer")


def test_hash_differs_for_different_configs():
    hashes = {config_hash(name) for name in ADAPTER_CONFIGS}
    assert len(hashes) == len(ADAPTER_CONFIGS)
    assert config_hash("lora[r=16]") != config_hash("lora")
    assert config_hash("lora[alpha=16]") != config_hash("lora")
    assert config_hash("seq_bn[leave_out=[0]]") != config_hash("seq_bn")
    assert config_hash("par_bn[scaling=learned]") != config_hash("par_bn")
    assert config_hash("dynamic") != config_hash("static")


def test_hash_is_stable():
    # sha1 of the canonical JSON; a change here changes every stored hash on the hub
    import hashlib

    from adapters_client.configs import canonical_json

    text = canonical_json("lora")
    assert text.startswith('{"alpha":8,"architecture":"lora","attn_matrices":["q","v"]')
    assert config_hash("lora") == hashlib.sha1(text.encode()).hexdigest()[:16]
    assert len(config_hash("lora")) == 16


def test_method_name():
    expected = {"seq_bn": "seq_bn", "houlsby": "double_seq_bn", "parallel": "par_bn", "lora": "lora",
                "ia3": "ia3", "prefix_tuning": "prefix_tuning", "prompt_tuning": "prompt_tuning",
                # Compacter and invertible adapters by their own names (the hub lists and resolves them so)
                "compacter": "compacter", "compacter++": "compacter++", "pfeiffer+inv": "seq_bn_inv",
                "double_seq_bn_inv": "double_seq_bn_inv"}
    for spec, name in expected.items():
        assert method_name(load_config(spec)) == name
    assert method_name(load_config(IA3Config().to_dict())) == "ia3"


def test_reduction_factor_mapping():
    config = load_config({**SeqBnConfig().to_dict(), "reduction_factor": {"1": 8, "default": 16}})
    assert config.reduction_factor_for(1) == 8 and config.reduction_factor_for(0) == 16
    with pytest.raises(InvalidAdapterConfig):
        load_config({**SeqBnConfig().to_dict(), "reduction_factor": {"x": 8}})


def test_fusion_configs():
    dynamic = load_fusion_config("dynamic")
    static = load_fusion_config("static")
    assert dynamic.value and dynamic.regularization and not static.value and not static.regularization
    assert load_fusion_config(None) == dynamic
    assert load_fusion_config(dynamic.to_dict()) == dynamic
    assert load_fusion_config("dynamic[temperature=True]").temperature is True
    with pytest.raises(InvalidAdapterConfig) as info:
        load_fusion_config("wild")
    assert info.value.field == "config"
    with pytest.raises(InvalidAdapterConfig) as info:
        load_fusion_config({**static.to_dict(), "extra": 1})
    assert info.value.field == "extra"


class _HFConfig:
    model_type = "bert"
    hidden_size = 32


def test_build_adapter_config_json():
    data = build_adapter_config_json("lora[r=4]", "sst-2", _HFConfig(), "BertAdapterModel", "bert-base-uncased")
    assert data == {
        "config": LoRAConfig(r=4).to_dict(),
        "hidden_size": 32,
        "model_class": "BertAdapterModel",
        "model_name": "bert-base-uncased",
        "model_type": "bert",
        "name": "sst-2",
        "version": "adapters.1.3.0",
    }
    from_dict = build_adapter_config_json("seq_bn", "x", {"model_type": "gpt2", "hidden_size": 8})
    assert from_dict["model_type"] == "gpt2" and from_dict["hidden_size"] == 8
    config, meta = read_adapter_config_json(json.loads(json.dumps(data)))
    assert config == LoRAConfig(r=4) and meta["name"] == "sst-2" and meta["model_type"] == "bert"


def test_read_adapter_config_json_errors():
    with pytest.raises(IncompatibleAdapter):
        read_adapter_config_json([1, 2])
    with pytest.raises(InvalidAdapterConfig):
        read_adapter_config_json({"name": "a"})
    with pytest.raises(IncompatibleAdapter):
        read_adapter_config_json({"config": LoRAConfig().to_dict()})
    with pytest.raises(InvalidAdapterConfig):
        read_adapter_config_json({"name": "a", "config": {"architecture": "mystery"}})


def test_legacy_activation_names_without_version():
    data = {"name": "a", "config": {**SeqBnConfig().to_dict(), "non_linearity": "gelu"}}
    config, _ = read_adapter_config_json(data)
    assert config.non_linearity == "gelu_new"
    config, _ = read_adapter_config_json({**data, "version": "adapters.1.3.0"})
    assert config.non_linearity == "gelu"


def test_read_fusion_config_json():
    config, meta = read_fusion_config_json({"config": load_fusion_config("static").to_dict(), "name": "a,b"})
    assert config == load_fusion_config("static") and meta["name"] == "a,b"
    with pytest.raises(InvalidAdapterConfig):
        read_fusion_config_json({"name": "a,b"})


def test_library_style_load_classmethod():
    from adapters_client.configs import AdapterConfig, AdapterFusionConfig

    assert AdapterConfig.load("lora[r=4]") == LoRAConfig(r=4)
    assert AdapterConfig.load("pfeiffer", reduction_factor=8).reduction_factor == 8
    assert AdapterFusionConfig.load("static") == load_fusion_config("static")
