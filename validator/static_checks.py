"""The checks that read files but run nothing: the file set, the configs, weight keys and shapes, finiteness.

Files and JSON are checked with the hub's own upload checks (``registry.checks``, no ORM); weight keys
and shapes are compared with the tensors ``adapters_client`` builds for the same config on the backbone.
Each check returns a list of problems (dicts with ``code``, and ``key`` / ``expected`` / ``got`` where
they apply) and raises ``AdapterFault`` when it cannot go on.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

import torch

from .errors import AdapterFault, InvalidConfig, InvalidFiles

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
HEAD_CONFIG = "head_config.json"
HEAD_WEIGHTS = "model_head.safetensors"
FUSION_CONFIG = "adapter_fusion_config.json"
# Defaults of the hub's settings (hubsite/settings/base.py), used when no Django settings are configured.
_SHAPE_CACHE_SIZE = 256
_LIMIT_DEFAULTS = {"HUB_MAX_SAFETENSORS_HEADER_BYTES": 16 * 1024 * 1024, "HUB_MAX_JSON_BYTES": 1024 * 1024}


@dataclass
class Context:
    """What the checks of one validation learn and share."""

    folder: Path
    paths: dict = field(default_factory=dict)
    meta: object = None
    config: object = None
    head_doc: Optional[dict] = None
    head: object = None
    tensors: dict = field(default_factory=dict)
    head_tensors: dict = field(default_factory=dict)
    backbone: object = None
    adapter_name: Optional[str] = None
    head_name: Optional[str] = None
    outputs: dict = field(default_factory=dict)


def ensure_hub_settings() -> None:
    """Let the hub's checks run without a Django project (the offline CLI): configure their limits only."""
    from django.conf import settings

    if settings.configured or os.environ.get("DJANGO_SETTINGS_MODULE"):
        return
    limits = {}
    for name, default in _LIMIT_DEFAULTS.items():
        raw = os.environ.get(name, "")
        limits[name] = int(raw) if raw.strip() else default
    settings.configure(**limits)


def _from_registry(exc, cls=InvalidFiles) -> AdapterFault:
    """An upload check's typed error as an adapter fault, keeping its stable code and facts."""
    extra = dict(getattr(exc, "extra", {}) or {})
    if "field" in extra:
        extra["key"] = extra.pop("field")
    return cls(getattr(exc, "detail", str(exc)), code=getattr(exc, "code", None), **extra)


def check_files(ctx: Context) -> list:
    """Names, pickles and the safetensors headers; nothing is unpickled or loaded."""
    from registry.checks import check_file_set, check_not_pickle, check_safetensors
    from registry.errors import UserError

    ensure_hub_settings()
    if not ctx.folder.is_dir():
        raise InvalidFiles(f"{str(ctx.folder)!r} is not a folder", code="missing_file")
    nested = sorted(p.name for p in ctx.folder.iterdir() if not p.is_file() or p.is_symlink())
    if nested:
        raise InvalidFiles(f"the adapter folder may hold plain files only; found {nested}", code="invalid_filename",
                           files=nested)
    ctx.paths = {p.name: str(p) for p in sorted(ctx.folder.iterdir())}
    try:
        names = check_file_set(ctx.paths)
        for name in names:
            if name.endswith(".safetensors"):
                check_not_pickle(ctx.paths[name], name)
        ctx.tensors = check_safetensors(ctx.paths[ADAPTER_WEIGHTS], ADAPTER_WEIGHTS)
        if HEAD_WEIGHTS in ctx.paths:
            ctx.head_tensors = check_safetensors(ctx.paths[HEAD_WEIGHTS], HEAD_WEIGHTS)
        for name in names:
            if name.endswith(".safetensors") and name not in (ADAPTER_WEIGHTS, HEAD_WEIGHTS):
                check_safetensors(ctx.paths[name], name)
    except UserError as exc:
        raise _from_registry(exc) from None
    return []


def check_config(ctx: Context) -> list:
    """adapter_config.json (known method, valid fields), head_config.json, and both against the backbone."""
    from registry.checks import check_adapter_config, check_fusion_config, check_head_config, load_json_file
    from registry.errors import UserError

    try:
        ctx.meta = check_adapter_config(load_json_file(ctx.paths[ADAPTER_CONFIG], ADAPTER_CONFIG))
        if HEAD_CONFIG in ctx.paths:
            ctx.head_doc = load_json_file(ctx.paths[HEAD_CONFIG], HEAD_CONFIG)
            check_head_config(ctx.head_doc)
        if FUSION_CONFIG in ctx.paths:
            check_fusion_config(load_json_file(ctx.paths[FUSION_CONFIG], FUSION_CONFIG))
    except UserError as exc:
        raise _from_registry(exc, InvalidConfig) from None
    from adapters_client.configs import load_config

    ctx.config = load_config(ctx.meta.config)
    problems = []
    if not ctx.meta.name:
        problems.append(_config_problem(ADAPTER_CONFIG, "name", "the adapter's 'name' is required"))
    if ctx.head_doc is not None and not (isinstance(ctx.head_doc.get("name"), str) and ctx.head_doc["name"]):
        problems.append(_config_problem(HEAD_CONFIG, "name", "the head's 'name' is required"))
    if ctx.backbone is not None:
        problems += _against_backbone(ctx)
    return problems


def _config_problem(filename: str, key: str, detail: str, **extra) -> dict:
    return {"code": "invalid_config", "file": filename, "key": key, "detail": detail, **extra}


def _against_backbone(ctx: Context) -> list:
    """Model type and hidden size of the declared backbone; the head must be buildable on it."""
    fingerprint, twin = ctx.backbone.fingerprint, ctx.backbone.shape_model
    problems = []
    docs = [(ADAPTER_CONFIG, {"model_type": ctx.meta.model_type, "hidden_size": ctx.meta.hidden_size})]
    if ctx.head_doc is not None:
        docs.append((HEAD_CONFIG, ctx.head_doc))
    for filename, doc in docs:
        expected = {"model_type": fingerprint.model_type, "hidden_size": fingerprint.hidden_size}
        for key, want in expected.items():
            got = doc.get(key)
            if got is not None and got != want:
                problems.append(_config_problem(filename, key, f"the backbone {fingerprint.model_name!r} has "
                                                f"{key} {want!r}", expected=want, got=got))
    if ctx.head_doc is not None and isinstance(ctx.head_doc.get("name"), str) and not problems:
        try:
            with torch.device("meta"):  # shapes only: a head of a billion labels costs nothing here
                ctx.head = twin.build_head_from_config(ctx.head_doc["name"], ctx.head_doc["config"])
        except (TypeError, ValueError) as exc:  # InvalidHead is a ValueError
            problems.append(_config_problem(HEAD_CONFIG, "config", f"the head does not fit the backbone: {exc}"))
    return problems


def _shape_problems(file_shapes: dict, expected: dict, aliases: dict, code: str, allowed_missing=()) -> list:
    """Missing, unexpected and wrongly shaped keys. ``aliases``: file key -> the model key it fills."""
    problems = []
    filled = set()
    for key in sorted(file_shapes):
        target = aliases.get(key)
        if target is None:
            problems.append({"code": "unexpected_keys", "key": key, "detail": "not part of this adapter on "
                                                                              "this backbone"})
            continue
        filled.add(target)
        want, got = list(expected[target]), list(file_shapes[key])
        if want != got:
            problems.append({"code": code, "key": key, "expected": want, "got": got})
    for target in sorted(set(expected) - filled - set(allowed_missing)):
        problems.append({"code": "missing_keys", "key": target, "expected": list(expected[target])})
    return problems


def check_weights(ctx: Context) -> list:
    """Every weight key and shape against the adapter (and head) ``adapters_client`` builds on the backbone."""
    from adapters_client.formats import _canonical_aliases

    prefix = ctx.backbone.shape_model.adapter_engine.spec.base_prefix
    expected, aliases = _expected_shapes(ctx.backbone, ctx.meta.name, ctx.config, ctx.meta.config_hash)
    canonical = _canonical_aliases({k: k for k in ctx.tensors}, prefix)
    file_to_model = {original: aliases.get(key if key.startswith(prefix + ".") else f"{prefix}.{key}")
                     for key, original in canonical.items()}
    file_shapes = {key: info.shape for key, info in ctx.tensors.items() if key in file_to_model}
    problems = _shape_problems(file_shapes, expected, file_to_model, "shape_mismatch")
    if ctx.head is not None:
        problems += _head_problems(ctx)
    return problems


def _expected_shapes(backbone, name: str, config, config_hash: str) -> tuple[dict, dict]:
    """(full key -> shape, every alias key -> its full key) of adapter ``name`` with ``config``.

    Built on the backbone's meta-device twin, so a config implying huge tensors allocates nothing;
    remembered per backbone (the same configuration comes back often).
    """
    from adapters_client.configs import ADAPTER_SEGMENTS
    from adapters_client.weights import expected_groups, overwritten_init

    cache_key = (name, config_hash)
    if cache_key in backbone.shapes:
        backbone.shapes.move_to_end(cache_key)
        return backbone.shapes[cache_key]
    engine = backbone.shape_model.adapter_engine
    prefix = engine.spec.base_prefix + "."
    try:
        with torch.device("meta"), overwritten_init():  # shapes only: no init (a prompt from a string: no tokenizer)
            engine.add(name, config)
    except (ValueError, TypeError) as exc:
        raise InvalidConfig(f"the config cannot be applied to this backbone: {exc}", key="config") from None
    try:
        groups = expected_groups(engine, name, ADAPTER_SEGMENTS)
    finally:
        engine.delete(name)
    expected, aliases = {}, {}
    for group in groups:
        expected[prefix + group.keys[0]] = tuple(group.tensor.shape)
        for key in group.keys:
            aliases[prefix + key] = prefix + group.keys[0]
    backbone.shapes[cache_key] = (expected, aliases)
    if len(backbone.shapes) > _SHAPE_CACHE_SIZE:
        backbone.shapes.popitem(last=False)
    return expected, aliases


def _head_problems(ctx: Context) -> list:
    model, head = ctx.backbone.shape_model, ctx.head
    head_prefix = f"heads.{ctx.head_doc['name']}."
    expected = {head_prefix + k: tuple(v.shape) for k, v in head.state_dict().items()}
    tied = {head_prefix + head.output_key()} if model.head_will_tie(head) else set()
    aliases = {key: key for key in ctx.head_tensors if key in expected}
    file_shapes = {key: info.shape for key, info in ctx.head_tensors.items()}
    return _shape_problems(file_shapes, expected, aliases, "head_shape", allowed_missing=tied)


def check_finite(ctx: Context) -> list:
    """Every floating-point weight finite (no NaN, no Inf); lists each bad tensor."""
    from safetensors.torch import load_file

    problems = []
    for filename in (ADAPTER_WEIGHTS, HEAD_WEIGHTS):
        if filename not in ctx.paths:
            continue
        for key, tensor in sorted(load_file(ctx.paths[filename], device="cpu").items()):
            if not tensor.is_floating_point():
                continue
            nan = int(torch.isnan(tensor).sum())
            inf = int(torch.isinf(tensor).sum())
            if nan or inf:
                problems.append({"code": "non_finite_weights", "key": key, "file": filename,
                                 "detail": f"{nan} NaN and {inf} infinite of {tensor.numel()} values"})
    return problems
