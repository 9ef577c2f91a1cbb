"""Real adapters of a chosen size: a BERT backbone built from a config, a ``seq_bn`` adapter with
reduction factor 1 (two hidden x hidden matrices per layer), saved without a head, uploaded through
the hub's upload endpoint and marked valid the way the validator records a verdict."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from benchmarks.load_soak import client
from benchmarks.load_soak.hub import ORG, SUBTASKS, TASK

ADAPTER_CONFIG = "seq_bn[reduction_factor=1]"
ADAPTER_NAME = "bench"
WEIGHTS = "adapter.safetensors"
CONFIG = "adapter_config.json"

# nominal size (MB) -> (hidden size, layers): seq_bn[reduction_factor=1] stores 2 x (h*h + h) floats per layer
SHAPES = {1: (256, 2), 10: (512, 5), 100: (1024, 12)}


@dataclass
class BenchAdapter:
    size_mb: int
    hidden: int
    layers: int
    model_name: str
    identifier: str
    folder: Path  # the saved adapter (adapter_config.json + adapter.safetensors)
    weights_bytes: int
    weights_sha256: str
    file_ids: dict  # file name -> the hub's VersionFile id (set by upload)

    @property
    def weights_path(self) -> Path:
        return self.folder / WEIGHTS


def build_model(hidden: int, layers: int, model_name: str):
    """A randomly initialised BERT backbone (small vocabulary and FFN: only the adapter's size matters)."""
    import torch
    from transformers import BertConfig, BertModel

    from adapters_client.model import AdapterModel

    torch.manual_seed(hidden * 100 + layers)
    config = BertConfig(hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=4,
                        intermediate_size=hidden, vocab_size=512, max_position_embeddings=64)
    model = AdapterModel(BertModel(config))
    model.config._name_or_path = model_name  # a public-looking backbone name, recorded in adapter_config.json
    model.eval()
    return model


def _sha256(path: Path) -> str:
    hasher = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1024 * 1024), b""):
            hasher.update(chunk)
    return hasher.hexdigest()


def save(model, size_mb: int, hidden: int, layers: int, folder: Path, index: int) -> BenchAdapter:
    """Add the adapter with random weights, save it (no head) and take it off the model again."""
    import torch

    model.add_adapter(ADAPTER_NAME, ADAPTER_CONFIG)
    with torch.no_grad():  # non-zero everywhere: the file's bytes are unique to this size
        for name, param in model.named_parameters():
            if f".adapters.{ADAPTER_NAME}." in name:
                param.normal_(0.0, 0.02)
    model.save_adapter(str(folder), ADAPTER_NAME, with_head=False)
    model.delete_adapter(ADAPTER_NAME)
    weights = folder / WEIGHTS
    return BenchAdapter(size_mb=size_mb, hidden=hidden, layers=layers, model_name=model.config._name_or_path,
                        identifier=f"{TASK}/{SUBTASKS[index]}@{ORG}", folder=folder,
                        weights_bytes=weights.stat().st_size, weights_sha256=_sha256(weights), file_ids={})


def upload(hub, adapter: BenchAdapter, timeout: float = 600.0) -> None:
    """Upload the folder through the hub (multipart, with the hub's upload token); record the file ids."""
    files = [(CONFIG, (adapter.folder / CONFIG).read_bytes()), (WEIGHTS, adapter.weights_path.read_bytes())]
    fields = {"identifier": adapter.identifier, "model_name": adapter.model_name, "version": "1.0.0",
              "sha256": json.dumps({WEIGHTS: adapter.weights_sha256})}
    answer = client.upload(hub.port, hub.token, fields, files, timeout=timeout)
    if answer.status != 201:
        raise RuntimeError(f"upload of {adapter.identifier} answered {answer.status}: {answer.body}")
    adapter.file_ids = {f["name"]: f["id"] for f in answer.body["files"]}
    stored = {f["name"]: f["size"] for f in answer.body["files"]}
    if stored.get(WEIGHTS) != adapter.weights_bytes:
        raise RuntimeError(f"the hub recorded {stored.get(WEIGHTS)} bytes for {WEIGHTS}, "
                           f"the file has {adapter.weights_bytes}")


def mark_valid(adapter: BenchAdapter) -> None:
    """Record the verdict "valid" as the validator's worker does (``record_validation``)."""
    from django.db import connections

    from registry.choices import VersionStatus
    from registry.models import AdapterVersion
    from registry.services.lifecycle import record_validation

    version = AdapterVersion.objects.get(
        adapter__organisation__slug=ORG, adapter__subtask__slug=adapter.identifier.split("/")[1].split("@")[0],
        adapter__model_name=adapter.model_name, version="1.0.0")
    if not record_validation(version.pk, version.digest, VersionStatus.VALID,
                             {"checks": [], "note": "marked valid by benchmarks.download"}):
        raise RuntimeError(f"{adapter.identifier} was already final: {version.status}")
    connections.close_all()
