"""A backbone's fingerprint: digests of its config and of its weights as loaded.

The hub's validator records the fingerprint of the backbone it checked a version on; the client computes
the same digests on the backbone a user applies the adapter to and warns when they differ (an adapter
silently applied to another revision of its base model).
"""

from __future__ import annotations

import hashlib
import json
import warnings

import torch

from .configs.methods import is_adapter_key

# config keys that say how the model was loaded or saved, not what it is
_VOLATILE_CONFIG_KEYS = frozenset({"transformers_version", "dtype", "torch_dtype"})
# ReFT interventions (``refts``, a registered segment now, so is_adapter_key covers them too): a model that holds
# them still has the same backbone
_FOREIGN_SEGMENTS = (".refts.",)


class BackboneMismatchWarning(UserWarning):
    """The backbone differs from the one the hub validated the adapter on."""


def config_digest(config) -> str:
    """sha256 of the config's sorted-key JSON, leaving out private (``_``) and load-time fields."""
    data = {k: v for k, v in config.to_dict().items() if not k.startswith("_") and k not in _VOLATILE_CONFIG_KEYS}
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode("utf-8")).hexdigest()


def weights_digest(module: torch.nn.Module) -> str:
    """sha256 over every backbone state-dict entry in key order: name, dtype, shape, then the raw bytes.

    Entries of adapters, fusions and prefix/prompt pools are left out, so the digest of a backbone does not
    change when adapters are added to it."""
    digest = hashlib.sha256()
    for key, tensor in sorted(module.state_dict().items()):
        if is_adapter_key(key) or any(segment in key for segment in _FOREIGN_SEGMENTS):
            continue
        flat = tensor.detach().to("cpu").contiguous().reshape(-1)
        digest.update(f"{key}|{str(tensor.dtype).removeprefix('torch.')}|{list(tensor.shape)}\n".encode("utf-8"))
        digest.update(flat.view(torch.uint8).numpy().tobytes())
    return digest.hexdigest()


def check_backbone(model, expected: dict | None, identifier: str = "the adapter") -> bool:
    """Warn (BackboneMismatchWarning) when ``model``'s backbone weights differ from ``expected`` (the hub's
    ``backbone_fingerprint``); True when they match or there is nothing to compare with."""
    if not expected or not expected.get("weights_sha256") or expected.get("shape_only"):
        return True
    base = getattr(model, "base_model", model)
    dtype = next(base.parameters()).dtype
    if str(dtype).removeprefix("torch.") != expected.get("dtype", "float32"):
        return True  # a cast backbone cannot match byte for byte; nothing meaningful to compare
    if weights_digest(base) == expected["weights_sha256"]:
        return True
    revision = f" (revision {expected['revision']})" if expected.get("revision") else ""
    warnings.warn(BackboneMismatchWarning(
        f"{identifier} was validated on {expected.get('model_name')}{revision}, whose weights differ from the "
        f"backbone it is being applied to: outputs and scores may not be what the hub verified"), stacklevel=3)
    return False
