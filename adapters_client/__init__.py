"""adapters_client: find, download and apply adapters.

The public API mirrors the ``adapters`` library (CONTRACTS.md section 3). Torch is imported
lazily: ``adapters_client.identifiers``, ``.configs`` and ``.errors`` work without it, so the
hub reuses them to check uploads.
"""

from __future__ import annotations

import importlib

from .errors import (  # noqa: F401  (re-exported)
    AdapterNotFound,
    AdaptersClientError,
    AmbiguousIdentifier,
    ChecksumMismatch,
    HubError,
    IncompatibleAdapter,
    InvalidAdapterConfig,
    InvalidComposition,
    InvalidIdentifier,
    OfflineCacheMiss,
)
from .identifiers import AdapterId, parse_identifier  # noqa: F401

__version__ = "0.1.0"

# name -> module that defines it; imported on first use (these need torch / transformers).
# Config classes are torch-free; exported under the adapters library's names.
_CONFIGS = (
    "AdapterConfig", "SeqBnConfig", "DoubleSeqBnConfig", "ParBnConfig", "LoRAConfig", "IA3Config",
    "PrefixTuningConfig", "PromptTuningConfig", "AdapterFusionConfig", "DynamicAdapterFusionConfig",
    "StaticAdapterFusionConfig", "SeqBnInvConfig", "DoubleSeqBnInvConfig", "CompacterConfig",
    "CompacterPlusPlusConfig", "DoRAConfig", "VeraConfig", "DvoRAConfig", "MTLLoRAConfig",
)

_LAZY = {name: "adapters_client.configs" for name in _CONFIGS}
_LAZY.update({
    "AutoAdapterModel": "adapters_client.model",
    "init": "adapters_client.model",
    "Stack": "adapters_client.composition",
    "Fuse": "adapters_client.composition",
    "Parallel": "adapters_client.composition",
    "Average": "adapters_client.composition",
    "BatchSplit": "adapters_client.composition",
    "Split": "adapters_client.composition",
    "MultiTask": "adapters_client.composition",
    "AdapterSetup": "adapters_client.context",
    "load": "adapters_client.api",
    "resolve": "adapters_client.hub",
    "download": "adapters_client.hub",
    "push": "adapters_client.hub",
    "pipeline": "adapters_client.pipelines",
    "TextClassificationPipeline": "adapters_client.pipelines",
    "TokenClassificationPipeline": "adapters_client.pipelines",
    "TextGenerationPipeline": "adapters_client.pipelines",
})


def __getattr__(name: str):
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'adapters_client' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__():
    return sorted(set(globals()) | set(_LAZY))
