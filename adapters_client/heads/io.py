"""Saving and loading heads as ``head_config.json`` + ``model_head.safetensors`` (library format)."""

from __future__ import annotations

import json
import logging
import os

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from .. import __version__
from ..errors import IncompatibleAdapter
from ..weights import usual_permissions
from .errors import InvalidHead

logger = logging.getLogger(__name__)

HEAD_CONFIG_NAME = "head_config.json"
HEAD_WEIGHTS_NAME = "model_head.safetensors"
PICKLED_HEAD_WEIGHTS_NAME = "pytorch_model_head.bin"


def library_model_class(model) -> str:
    """The ``model_class`` the ``adapters`` library expects (e.g. ``BertAdapterModel``)."""
    explicit = getattr(model, "model_class_name", None) or getattr(model, "library_model_class", None)
    if explicit:
        return explicit
    base = type(model.base_model).__name__
    return (base[: -len("Model")] if base.endswith("Model") else base) + "AdapterModel"


def head_config_document(model, name: str) -> dict:
    """The content of head_config.json for head ``name``."""
    return {
        "config": dict(model.heads[name].config),
        "hidden_size": getattr(model.config, "hidden_size", None),
        "model_class": library_model_class(model),
        "model_name": getattr(model.config, "name_or_path", "") or "",
        "model_type": model.config.model_type,
        "name": name,
        "version": f"adapters_client.{__version__}",
    }


def save_head(model, folder: str, name: str) -> None:
    if name not in model.heads:
        raise InvalidHead(f"Unknown head_name '{name}'; available: {sorted(model.heads)}.", head=name)
    os.makedirs(folder, exist_ok=True)
    with open(os.path.join(folder, HEAD_CONFIG_NAME), "w", encoding="utf-8") as handle:
        json.dump(head_config_document(model, name), handle, indent=2, sort_keys=True)
    state = {f"heads.{name}.{key}": value.detach().contiguous() for key, value in model.heads[name].state_dict().items()}
    save_file(state, os.path.join(folder, HEAD_WEIGHTS_NAME))
    usual_permissions(os.path.join(folder, HEAD_WEIGHTS_NAME))


def _read_weights(folder: str, allow_pickle: bool) -> dict:
    safe = os.path.join(folder, HEAD_WEIGHTS_NAME)
    if os.path.isfile(safe):
        try:
            return load_file(safe, device="cpu")
        except (SafetensorError, OSError, ValueError) as exc:
            raise IncompatibleAdapter(f"Damaged head weights file {safe}: {exc}", file=safe) from exc
    pickled = os.path.join(folder, PICKLED_HEAD_WEIGHTS_NAME)
    if os.path.isfile(pickled) and allow_pickle:
        return torch.load(pickled, map_location="cpu", weights_only=True)
    if os.path.isfile(pickled):
        raise IncompatibleAdapter(
            f"{pickled} holds pickled weights; only safetensors load by default (pass allow_pickle=True).",
            file=pickled,
        )
    raise IncompatibleAdapter(f"{folder} has {HEAD_CONFIG_NAME} but no {HEAD_WEIGHTS_NAME}.", file=safe)


def _read_config(folder: str) -> dict:
    path = os.path.join(folder, HEAD_CONFIG_NAME)
    try:
        with open(path, encoding="utf-8") as handle:
            document = json.load(handle)
    except (OSError, ValueError) as exc:
        raise IncompatibleAdapter(f"Unreadable {path}: {exc}", file=path) from exc
    for key in ("config", "name"):
        if not isinstance(document, dict) or key not in document:
            raise IncompatibleAdapter(f"{path} lacks '{key}'.", file=path, key=key)
    if not isinstance(document["config"], dict) or "head_type" not in document["config"]:
        raise IncompatibleAdapter(f"{path}: 'config' lacks 'head_type'.", file=path, key="head_type")
    return document


def _check_backbone(model, document: dict, folder: str) -> None:
    saved_type = document.get("model_type")
    if saved_type and saved_type != model.config.model_type:
        raise IncompatibleAdapter(
            f"Head in {folder} was saved for model type '{saved_type}', not '{model.config.model_type}'.",
            expected=model.config.model_type, found=saved_type,
        )


def _checked_state(head, weights: dict, saved_name: str, allowed_missing: set) -> dict:
    """The head-local state dict from the file's weights, or IncompatibleAdapter naming the bad key."""
    prefix = f"heads.{saved_name}."
    expected = head.state_dict()
    state = {}
    for key, tensor in weights.items():
        local = key[len(prefix):] if key.startswith(prefix) else None
        if local not in expected:
            raise IncompatibleAdapter(f"Unexpected key '{key}' in head weights.", key=key)
        if tuple(tensor.shape) != tuple(expected[local].shape):
            raise IncompatibleAdapter(
                f"Key '{key}' has shape {list(tensor.shape)}; the model needs {list(expected[local].shape)}.",
                key=key, found=list(tensor.shape), expected=list(expected[local].shape),
            )
        if tensor.is_floating_point() and not torch.isfinite(tensor).all():
            raise IncompatibleAdapter(f"Key '{key}' holds non-finite values.", key=key)
        state[local] = tensor
    for local in expected:
        if local not in state and local not in allowed_missing:
            raise IncompatibleAdapter(f"Missing key '{prefix}{local}' in head weights.", key=prefix + local)
    return state


def load_head(model, folder: str, load_as=None, id2label=None, set_active=True, allow_pickle=False):
    """Validate and add the head saved in ``folder``; None when it holds no head at all."""
    has_weights = any(os.path.isfile(os.path.join(folder, n)) for n in (HEAD_WEIGHTS_NAME, PICKLED_HEAD_WEIGHTS_NAME))
    if not os.path.isfile(os.path.join(folder, HEAD_CONFIG_NAME)) and not has_weights:
        return None
    if not os.path.isfile(os.path.join(folder, HEAD_CONFIG_NAME)):
        raise IncompatibleAdapter(f"{folder} has head weights but no {HEAD_CONFIG_NAME}.", file=folder)
    document = _read_config(folder)
    _check_backbone(model, document, folder)
    config = dict(document["config"])
    if id2label:
        config["id2label"], config["label2id"] = {int(i): label for i, label in id2label.items()}, None
    name = load_as or document["name"]
    try:
        head = model.build_head_from_config(name, config)
    except (TypeError, InvalidHead) as exc:
        raise IncompatibleAdapter(f"Head config in {folder} does not fit this model: {exc}", file=folder) from exc
    tied = {head.output_key()} if model.head_will_tie(head) else set()
    state = _checked_state(head, _read_weights(folder, allow_pickle), document["name"], tied)
    if name in model.heads:
        logger.warning("Overwriting existing head '%s'", name)
    model.add_prediction_head(head, overwrite_ok=True, set_active=set_active)
    _warn_if_tied_differs(head, state, tied)
    with torch.no_grad():
        head.load_state_dict(state, strict=False)
    return name


def _warn_if_tied_differs(head, state: dict, tied: set) -> None:
    """Tied output weights are shared with the input embeddings: loading them overwrites those (as the library does)."""
    for key in tied & set(state):
        current = head.state_dict()[key]
        if not torch.allclose(current, state[key].to(current.dtype), atol=1e-6):
            logger.warning("Head '%s': its saved output weights replace this model's input embeddings "
                           "(they are tied).", head.name)
