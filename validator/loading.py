"""Loading allow-listed backbones: device choice, fingerprint, probe batch, and a per-process LRU cache.

A loaded backbone is an ``adapters_client`` ``AdapterModel`` in eval mode with no adapters, plus its fixed
probe batch and the backbone's own output on it (the baseline an adapter must change). Validations add
their adapter and head to it and remove them afterwards, so consecutive validations load it once.
"""

from __future__ import annotations

import copy
import json
import os
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from adapters_client.fingerprint import config_digest, weights_digest

from .backbones import CONFIG_ONLY, FOLDER, HF_CACHE, BackboneSource
from .errors import BackboneUnavailable
from .report import BackboneFingerprint

DEFAULT_CACHE_BYTES = 8 * 1024 ** 3
PROBE_TEXTS = (
    "The adapter hub runs every adapter on its backbone before anyone downloads it.",
    "A short probe.",
)
PROBE_LENGTH = 12
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.txt", "vocab.json", "spiece.model",
                    "sentencepiece.bpe.model")
# Config fields that say how or when a config was loaded, not what the model is.
_SEED = 0


@dataclass
class LoadedBackbone:
    source: BackboneSource
    model: object
    fingerprint: BackboneFingerprint
    nbytes: int
    probe: dict
    probe_kind: str
    baseline: torch.Tensor
    shape_model: object = None
    tokenizer: object = None
    # (adapter name, config hash) -> (expected shapes, file key -> model key): a config's shapes, computed once
    shapes: OrderedDict = field(default_factory=OrderedDict)
    lock: threading.RLock = field(default_factory=threading.RLock)


def choose_device(preferred: Optional[str] = None) -> str:
    """``preferred``, else ``HUB_VALIDATOR_DEVICE``, else cuda when available, else cpu."""
    choice = preferred or os.environ.get("HUB_VALIDATOR_DEVICE") or ""
    if choice:
        return choice
    return "cuda" if torch.cuda.is_available() else "cpu"


def _hf_cache_folder(source: BackboneSource) -> tuple[str, str]:
    from huggingface_hub import snapshot_download

    repo_id = source.repo_id or source.model_name
    try:
        folder = snapshot_download(repo_id=repo_id, revision=source.revision, cache_dir=source.cache_dir,
                                   local_files_only=True)
    except Exception as exc:  # every failure means: not available offline
        raise BackboneUnavailable(f"backbone {source.model_name!r} ({repo_id}@{source.revision or 'main'}) is "
                                  f"not in the Hugging Face cache: {type(exc).__name__}: {exc}",
                                  backbone=source.model_name) from None
    return folder, Path(folder).name


def _config_only_model(source: BackboneSource):
    from transformers import AutoConfig, AutoModel

    data = dict(source.config) if source.config is not None else _read_config_json(source)
    model_type = data.pop("model_type", None)
    config = AutoConfig.for_model(model_type, **data)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(_SEED)
        return AutoModel.from_config(config, dtype=torch.float32)


def _read_config_json(source: BackboneSource) -> dict:
    path = Path(source.path)
    path = path / "config.json" if path.is_dir() else path
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise BackboneUnavailable(f"backbone {source.model_name!r}: cannot read {path}: {exc}",
                                  backbone=source.model_name) from None


def _load_base(source: BackboneSource) -> tuple[torch.nn.Module, Optional[str], Optional[str]]:
    """(the HF base model on the CPU, its folder when it has one, its revision when known)."""
    from transformers import AutoModel

    if source.kind == CONFIG_ONLY:
        return _config_only_model(source), None, None
    if source.kind == HF_CACHE:
        folder, revision = _hf_cache_folder(source)
    elif source.kind == FOLDER:
        folder, revision = source.path, None
        if not folder or not os.path.isdir(folder):
            raise BackboneUnavailable(f"backbone {source.model_name!r}: folder {folder!r} does not exist",
                                      backbone=source.model_name)
    else:
        raise BackboneUnavailable(f"backbone {source.model_name!r}: unknown source {source.kind!r}")
    return AutoModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32), folder, revision


def _tokenizer(folder: Optional[str]):
    if not folder or not any(os.path.isfile(os.path.join(folder, n)) for n in _TOKENIZER_FILES):
        return None
    from transformers import AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    except Exception:  # a broken or partial tokenizer: fall back to fixed token ids
        return None
    if tokenizer.pad_token is None and tokenizer.eos_token is not None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def probe_batch(config, tokenizer) -> tuple[dict, str]:
    """The fixed probe: ``PROBE_TEXTS`` through the tokenizer, else seeded token ids; padding included."""
    if tokenizer is not None:
        try:
            encoded = tokenizer(list(PROBE_TEXTS), padding=True, truncation=True, max_length=32,
                                return_tensors="pt")
            return {k: v for k, v in encoded.items() if k in ("input_ids", "attention_mask")}, "tokenizer"
        except Exception:  # noqa: BLE001 - a tokenizer that cannot pad or encode: use fixed ids
            pass
    vocab = int(getattr(config, "vocab_size", 100) or 100)
    low = min(5, vocab - 1)
    generator = torch.Generator().manual_seed(_SEED)
    ids = torch.randint(low, vocab, (len(PROBE_TEXTS), PROBE_LENGTH), generator=generator)
    mask = torch.ones_like(ids)
    mask[1, PROBE_LENGTH // 2:] = 0
    return {"input_ids": ids, "attention_mask": mask}, "token_ids"


def run_probe(model, probe: dict) -> tuple:
    """(the base model's last hidden state, the head's output or None) of one forward pass of the AdapterModel,
    which also makes what the base model needs besides the probe (T5's decoder inputs, shifted from input_ids)."""
    captured = []
    hook = model.base_model.register_forward_hook(lambda _m, _a, out: captured.append(out[0]))
    try:
        with torch.no_grad():
            output = model(**probe)
    finally:
        hook.remove()
    head_output = output if getattr(model, "active_head", None) is not None else None
    return captured[-1], head_output


def shape_twin(config):
    """The backbone built on the meta device: every shape, no memory. An adapter's config is applied here
    first, so a config that implies huge tensors costs nothing before its file is found not to match."""
    from transformers import AutoModel

    from adapters_client.model import AdapterModel

    with torch.device("meta"):
        return AdapterModel(AutoModel.from_config(copy.deepcopy(config), dtype=torch.float32)).eval()


def load_backbone(source: BackboneSource, device: Optional[str] = None) -> LoadedBackbone:
    """Load ``source`` (offline), fingerprint it on the CPU, move it to ``device`` and run the baseline."""
    from adapters_client.model import AdapterModel

    device = choose_device(device)
    try:
        base, folder, revision = _load_base(source)
        model = AdapterModel(base).eval()
    except BackboneUnavailable:
        raise
    except Exception as exc:
        raise BackboneUnavailable(f"backbone {source.model_name!r} cannot be loaded: {type(exc).__name__}: {exc}",
                                  backbone=source.model_name) from None
    fingerprint = BackboneFingerprint(
        model_name=source.model_name, source=source.kind, revision=revision or None,
        config_sha256=config_digest(model.config), weights_sha256=weights_digest(model.base_model),
        shape_only=source.shape_only, device=device, dtype="float32", model_type=model.config.model_type,
        hidden_size=model.adapter_engine.hidden_size,
    )
    model.to(device)
    tokenizer = _tokenizer(folder)
    probe, kind = probe_batch(model.config, tokenizer)
    probe = {k: v.to(device) for k, v in probe.items()}
    baseline = run_probe(model, probe)[0].detach()
    nbytes = sum(t.numel() * t.element_size() for t in list(model.parameters()) + list(model.buffers()))
    return LoadedBackbone(source=source, model=model, fingerprint=fingerprint, nbytes=nbytes, probe=probe,
                          probe_kind=kind, baseline=baseline, shape_model=shape_twin(model.config),
                          tokenizer=tokenizer)


class BackboneCache:
    """Recently used backbones, least recently used evicted first once ``max_bytes`` is exceeded."""

    def __init__(self, max_bytes: int = DEFAULT_CACHE_BYTES, device: Optional[str] = None, loader=load_backbone):
        self.max_bytes = max_bytes
        self.device = choose_device(device)
        self.loads = 0
        self.hits = 0
        self._loader = loader
        self._entries: OrderedDict = OrderedDict()
        self._lock = threading.Lock()

    def get(self, source: BackboneSource) -> tuple[LoadedBackbone, bool]:
        """(the loaded backbone, whether it came from the cache)."""
        with self._lock:
            entry = self._entries.get(source.key)
            if entry is not None:
                self._entries.move_to_end(source.key)
                self.hits += 1
                return entry, True
            entry = self._loader(source, self.device)
            self.loads += 1
            self._entries[source.key] = entry
            self._evict(keep=source.key)
            return entry, False

    def _evict(self, keep: str) -> None:
        evicted = False
        while self.total_bytes > self.max_bytes and len(self._entries) > 1:
            del self._entries[next(k for k in self._entries if k != keep)]
            evicted = True
        if evicted and self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    @property
    def total_bytes(self) -> int:
        return sum(e.nbytes for e in self._entries.values())

    def __contains__(self, source: BackboneSource) -> bool:
        return source.key in self._entries

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_DEFAULT: Optional[BackboneCache] = None
_DEFAULT_LOCK = threading.Lock()


def default_cache() -> BackboneCache:
    """The process's cache, bounded by ``HUB_VALIDATOR_CACHE_BYTES`` (bytes; default 8 GiB)."""
    global _DEFAULT
    with _DEFAULT_LOCK:
        if _DEFAULT is None:
            raw = os.environ.get("HUB_VALIDATOR_CACHE_BYTES", "")
            _DEFAULT = BackboneCache(int(raw) if raw.strip() else DEFAULT_CACHE_BYTES)
        return _DEFAULT
