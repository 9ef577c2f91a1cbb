"""Method configurations (torch-free): dataclasses, parsing, hashing, adapter_config.json content."""

from .base import ACTIVATIONS, MethodConfig
from .bottleneck import (
    AdapterPlusConfig, BnConfig, CompacterConfig, CompacterPlusPlusConfig, DoubleSeqBnConfig, DoubleSeqBnInvConfig, ParBnConfig,
    SeqBnConfig, SeqBnInvConfig,
)
from .files import (
    CONFIG_FILE, FORMAT_VERSION, FUSION_CONFIG_FILE, FUSION_WEIGHTS_FILE, HEAD_CONFIG_FILE, HEAD_WEIGHTS_FILE,
    PICKLE_WEIGHTS_FILE, WEIGHTS_FILE, build_adapter_config_json, canonical_json, config_hash,
    read_adapter_config_json, read_fusion_config_json,
)
from .fusion import AdapterFusionConfig, DynamicAdapterFusionConfig, StaticAdapterFusionConfig
from .lora import DoRAConfig, DvoRAConfig, IA3Config, LoRAConfig, MTLLoRAConfig, VeraConfig
from .methods import (
    ADAPTER_SEGMENTS, FUSION_SEGMENT_NAMES, MethodSpec, get_method, is_adapter_key, method_for_config,
    register_method, registered_methods, unregister_method,
)
from .parsing import (
    ADAPTER_CONFIGS, ALIASES, DEFAULT_ADAPTER_CONFIG, DEFAULT_FUSION_CONFIG, FUSION_CONFIGS, canonical_name,
    config_from_dict, load_config, load_fusion_config, method_name, parse_overrides,
)
from .prefix_prompt import PrefixTuningConfig, PromptTuningConfig
from .reft import DiReftConfig, LoReftConfig, NoReftConfig, ReftConfig
from .union import UNION_CONFIGS, ConfigUnion, MAMConfig, UniPELTConfig, config_parts

# Name used by the adapters library for the base class.
AdapterConfig = MethodConfig

__all__ = [
    "ACTIVATIONS", "ADAPTER_CONFIGS", "ADAPTER_SEGMENTS", "ALIASES", "AdapterConfig", "AdapterFusionConfig",
    "AdapterPlusConfig", "BnConfig", "CONFIG_FILE", "CompacterConfig", "CompacterPlusPlusConfig", "DEFAULT_ADAPTER_CONFIG",
    "DEFAULT_FUSION_CONFIG", "DoRAConfig", "DoubleSeqBnConfig", "DvoRAConfig", "VeraConfig", "DoubleSeqBnInvConfig", "DynamicAdapterFusionConfig",
    "FORMAT_VERSION", "FUSION_CONFIGS", "FUSION_CONFIG_FILE", "FUSION_SEGMENT_NAMES", "FUSION_WEIGHTS_FILE",
    "HEAD_CONFIG_FILE", "HEAD_WEIGHTS_FILE", "IA3Config", "LoRAConfig", "MTLLoRAConfig", "MethodConfig", "MethodSpec",
    "PICKLE_WEIGHTS_FILE", "ParBnConfig", "PrefixTuningConfig", "PromptTuningConfig", "SeqBnConfig",
    "SeqBnInvConfig", "StaticAdapterFusionConfig", "WEIGHTS_FILE", "build_adapter_config_json", "canonical_json",
    "canonical_name", "config_from_dict", "config_hash", "get_method", "is_adapter_key", "load_config",
    "load_fusion_config", "method_for_config", "method_name", "parse_overrides", "read_adapter_config_json",
    "read_fusion_config_json", "register_method", "registered_methods", "unregister_method",
    "DiReftConfig", "LoReftConfig", "NoReftConfig", "ReftConfig",
    "UNION_CONFIGS", "ConfigUnion", "MAMConfig", "UniPELTConfig", "config_parts",
]
