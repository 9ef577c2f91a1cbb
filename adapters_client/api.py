"""The one-line entry points (CONTRACTS.md section 3): ``load`` here; ``resolve``, ``download`` and
``push`` live in the torch-free ``adapters_client.hub`` and are re-exported for existing imports."""

from __future__ import annotations

from .errors import IncompatibleAdapter
from .hub import CacheFallbackWarning, backbone_location, download, fetch, push, resolve  # noqa: F401
from .hub_api import HubClient
from .identifiers import AdapterId


def load(identifier: str, *, model_name=None, config=None, version=None, hub: HubClient | None = None,
         cache_dir=None, model=None, **from_pretrained_kwargs):
    """Resolve + download + backbone + adapter (+ head), with the adapter active.

    ``model_name`` picks the backbone when the identifier exists for several; the backbone is
    loaded with ``AutoAdapterModel.from_pretrained(model_name)`` unless ``model`` is given."""
    return load_with_resolution(identifier, model_name=model_name, config=config, version=version, hub=hub,
                                cache_dir=cache_dir, model=model, **from_pretrained_kwargs)[0]


def load_with_resolution(identifier: str, *, model_name=None, config=None, version=None, hub=None, cache_dir=None,
                         model=None, **from_pretrained_kwargs):
    """``load`` that also returns the resolution it used: (model, resolution)."""
    from .model import AutoAdapterModel

    resolution, folder = fetch(identifier, model_name=model_name, config=config, version=version, hub=hub,
                               cache_dir=cache_dir)
    if model is None:
        model = AutoAdapterModel.from_pretrained(backbone_location(resolution["model_name"]),
                                                 **from_pretrained_kwargs)
    elif getattr(model.config, "model_type", None) != resolution.get("model_type"):
        raise IncompatibleAdapter(
            f"{identifier} is for a {resolution.get('model_type')} backbone ({resolution['model_name']}), "
            f"the given model is {getattr(model.config, 'model_type', None)}"
        )
    from .fingerprint import check_backbone

    check_backbone(model, resolution.get("backbone_fingerprint"), str(identifier))
    model.load_adapter(str(folder), load_as=AdapterId.parse(identifier).subtask, set_active=True)
    return model, resolution
