"""The engine's side of the method registry (``configs/methods.py``): attaching a registered method to a model.

A per-layer method (scope ``layer``) names an ``inject(engine)`` function returning its sites, one object per
place it attaches at each layer; the engine calls it once per model. A model-level method (scope ``model``)
names a factory ``factory(engine)`` whose object is created when the first adapter of that method is added.

Sites: ``layer_idx``, ``path`` (for errors), an ``adapters`` ModuleDict, ``add(name, config) -> bool`` (True
when the site holds a module for this adapter), ``remove(name)``, and a ``compose(setup, state, lvl)`` that
the engine's hooks call (``methods/composable.py``). Model-level objects: ``add``, ``delete``,
``modules_of``, ``before_forward``, ``before_save``, ``expected_sites``.
"""

from __future__ import annotations

import importlib

from ..configs.methods import MethodSpec, method_for_config
from ..errors import InvalidAdapterConfig


def sites_for(engine, method: MethodSpec) -> list:
    """The sites of per-layer ``method`` in ``engine``, injected on first use."""
    if method.scope != "layer":
        raise InvalidAdapterConfig(f"{method.name} is not a per-layer method", field="architecture")
    if method.name not in engine.layer_sites:
        engine.layer_sites[method.name] = list(method.resolve_attach()(engine))
        if method.model_parts:  # its model-wide modules: one extension object, next to the model-level methods
            module_name, _, attr = method.model_parts.partition(":")
            engine.extensions[parts_key(method.name)] = getattr(importlib.import_module(module_name), attr)(engine)
    return engine.layer_sites[method.name]


def parts_key(method_name: str) -> str:
    """The key in ``engine.extensions`` of the model-wide parts of per-layer method ``method_name``."""
    return f"{method_name}.model"


def add_model_parts(engine, method: MethodSpec, name: str, config) -> None:
    """After the per-layer modules of adapter ``name``: its model-wide modules (``MethodSpec.model_parts``)."""
    parts = engine.extensions.get(parts_key(method.name)) if method.model_parts else None
    if parts is not None:
        parts.add(name, config)


def extension_for(engine, method_or_config):
    """The engine's object for a model-level method (or a config of one), created on first use."""
    method = method_or_config if isinstance(method_or_config, MethodSpec) else method_for_config(method_or_config)
    if method.scope != "model":
        raise InvalidAdapterConfig(f"no model-level method for {method.config_class.__name__}",
                                   field="architecture")
    if method.name not in engine.extensions:
        engine.extensions[method.name] = method.resolve_attach()(engine)
    return engine.extensions[method.name]
