"""The measured configurations, built with either library (both share the ``adapters`` API).

Each builder takes the library module (``adapters_client`` or ``adapters``) and the backbone folder
and returns a zero-argument callable running one forward pass of the batch; it raises when the
library cannot build that configuration (reported as "not available").
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

SKIPPED_LAYERS = [0, 1, 2]  # the lower half of MiniLM-L6


@dataclass(frozen=True)
class Setup:
    name: str
    description: str
    build: Callable  # (lib, folder, inputs) -> callable


def _model(lib, folder):
    return lib.AutoAdapterModel.from_pretrained(folder).eval()


def plain_backbone(folder, inputs):
    from transformers import AutoModel

    model = AutoModel.from_pretrained(folder).eval()
    return lambda: model(**inputs)


def _seq_bn(lib, folder, inputs):
    model = _model(lib, folder)
    model.add_adapter("a", config="seq_bn")
    model.set_active_adapters("a")
    return lambda: model(**inputs)


def _lora(lib, folder, inputs, merged):
    model = _model(lib, folder)
    model.add_adapter("l", config="lora")
    _randomise_lora_b(model)
    model.set_active_adapters("l")
    if merged:
        model.merge_adapter("l")
    return lambda: model(**inputs)


def _randomise_lora_b(model):
    """LoRA B starts at zero; give it values so the merged weights really change."""
    with torch.no_grad():
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(0, 0.01)


def _fuse3(lib, folder, inputs):
    model = _model(lib, folder)
    for name in "abc":
        model.add_adapter(name, config="seq_bn")
    model.add_adapter_fusion(lib.Fuse("a", "b", "c"))
    model.set_active_adapters(lib.Fuse("a", "b", "c"))
    return lambda: model(**inputs)


def _parallel4_skip(lib, folder, inputs):
    model = _model(lib, folder)
    for name in "abcd":
        model.add_adapter(name, config="seq_bn")
    model.set_active_adapters(lib.Parallel("a", "b", "c", "d"), skip_layers=SKIPPED_LAYERS)
    return lambda: model(**inputs)


def _four_passes(lib, folder, inputs):
    model = _model(lib, folder)
    for name in "abcd":
        model.add_adapter(name, config="seq_bn")

    def run():
        for name in "abcd":
            model.set_active_adapters(name)
            model(**inputs)

    return run


MIXED_ADAPTERS = 8  # mixed8 / eight_passes: the batch's rows spread over this many seq_bn adapters


def _mixed_names(batch: int) -> list:
    """Row i uses adapter i % 8 (interleaved: no adapter's rows are consecutive, the harder case)."""
    return [f"m{i % MIXED_ADAPTERS}" for i in range(batch)]


def _mixed_model(lib, folder):
    model = _model(lib, folder)
    for k in range(MIXED_ADAPTERS):
        model.add_adapter(f"m{k}", config="seq_bn")
    return model


def _mixed8(lib, folder, inputs):
    if lib.__name__ != "adapters_client":
        raise NotImplementedError("mixed-adapter batches (adapter_names=[...]) are an adapters_client feature")
    model = _mixed_model(lib, folder)
    names = _mixed_names(inputs["input_ids"].shape[0])
    return lambda: model(**inputs, adapter_names=names)


def _eight_passes(lib, folder, inputs):
    """What serving the mixed batch costs without adapter_names: one forward per adapter on its rows."""
    model = _mixed_model(lib, folder)
    names = _mixed_names(inputs["input_ids"].shape[0])
    parts = []
    for k in range(MIXED_ADAPTERS):
        rows = torch.tensor([i for i, name in enumerate(names) if name == f"m{k}"])
        parts.append((f"m{k}", {key: value.index_select(0, rows) for key, value in inputs.items()}))

    def run():
        for name, part in parts:
            model.set_active_adapters(name)
            model(**part)

    return run


SETUPS = [
    Setup("seq_bn", "one seq_bn adapter", _seq_bn),
    Setup("lora", "one LoRA adapter, unmerged", lambda lib, f, i: _lora(lib, f, i, merged=False)),
    Setup("lora_merged", "one LoRA adapter merged into the weights", lambda lib, f, i: _lora(lib, f, i, merged=True)),
    Setup("fuse3", "Fuse of three seq_bn adapters", _fuse3),
    Setup("parallel4_skip", "Parallel of four seq_bn, layers 0-2 skipped (AdapterDrop)", _parallel4_skip),
    Setup("four_passes", "four separate passes, one seq_bn each", _four_passes),
    Setup("mixed8", "one forward, rows spread over eight seq_bn adapters (adapter_names)", _mixed8),
    Setup("eight_passes", "eight forwards of the rows of one seq_bn adapter each", _eight_passes),
]
