"""Our configs serialise exactly like the adapters library's (runs in .venv-ref only)."""

from __future__ import annotations

import adapters
import pytest
from adapters import AdapterConfig, AdapterFusionConfig

from adapters_client.configs import ADAPTER_CONFIGS, ALIASES, load_config, load_fusion_config

OVERRIDES = [
    "lora[r=16,alpha=16]",
    "lora[r=4,alpha=8,attn_matrices=['q','k','v'],intermediate_lora=True,dropout=0.1]",
    "seq_bn[reduction_factor=8,non_linearity='gelu']",
    "seq_bn[leave_out=[0,1],ln_before=True]",
    "double_seq_bn[reduction_factor=4]",
    "par_bn[scaling=2.0]",
    "ia3[intermediate_lora=False]",
    "prefix_tuning[prefix_length=5,bottleneck_size=64]",
    "prompt_tuning[prompt_length=3]",
]


def test_library_version():
    assert adapters.__version__ == "1.3.0"


# keys our dict has on purpose: DiReFT's subtract_projection=False is a class attribute in adapters 1.3.0, outside
# its dict (so its DiReFT files reload as NoReFT); tests/parity/test_reft_library.py covers the rest
EXTRA_KEYS = {"direft": {"subtract_projection": False}}


@pytest.mark.parametrize("name", sorted(set(ADAPTER_CONFIGS) | set(ALIASES)))
def test_named_config_dicts_match(name):
    ours = load_config(name).to_dict()
    for key, value in EXTRA_KEYS.get(name, {}).items():
        assert ours.pop(key) == value
    assert ours == AdapterConfig.load(name).to_dict()


@pytest.mark.parametrize("spec", OVERRIDES)
def test_override_strings_match(spec):
    assert load_config(spec).to_dict() == AdapterConfig.load(spec).to_dict()


@pytest.mark.parametrize("spec", OVERRIDES + ["seq_bn", "ia3"])
def test_library_dicts_load_in_ours(spec):
    theirs = AdapterConfig.load(spec).to_dict()
    assert load_config(theirs).to_dict() == theirs


@pytest.mark.parametrize("name", ["dynamic", "static"])
def test_fusion_config_dicts_match(name):
    assert load_fusion_config(name).to_dict() == AdapterFusionConfig.load(name).to_dict()
