"""The method registry (torch-free): every adapter method the engine knows, registered once.

A method is registered with its name, config class, the public config names it answers to (presets such as
``seq_bn`` or ``prefix_tuning_flat``), the state-dict segments its weights live under, its scope (``layer``:
objects at every layer; ``model``: one object per model) and where its torch side lives (a dotted path,
imported only by the engine). Config parsing, save/load, whole-model save and the hub read this table.

Aliases (the adapters library's deprecated names) stay in ``adapters_client.rules.METHOD_ALIASES``, the table
the hub shares; a method's ``aliases`` are the entries of that table that point at one of its presets.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Callable, Optional

from ..errors import InvalidAdapterConfig
from ..rules import METHOD_ALIASES
from .base import MethodConfig
from .bottleneck import (
    BnConfig, CompacterConfig, CompacterPlusPlusConfig, DoubleSeqBnConfig, DoubleSeqBnInvConfig, ParBnConfig,
    SeqBnConfig, SeqBnInvConfig,
)
from .lora import DoRAConfig, DvoRAConfig, IA3Config, LoRAConfig, MTLLoRAConfig, VeraConfig
from .prefix_prompt import PrefixTuningConfig, PromptTuningConfig
from .reft import DiReftConfig, LoReftConfig, NoReftConfig, ReftConfig, reft_name

SCOPES = ("layer", "model")
# Where fusion layers keep their weights (fusion is a composition of bottleneck adapters, not a method).
FUSION_SEGMENTS = ("adapter_fusion_layer",)


@dataclass(frozen=True)
class MethodSpec:
    """One registered method.

    ``architecture_keys``: the values of ``"architecture"`` in a config dict that mean this method (``None``
    for dicts without the key). ``attach``: ``"package.module:name"`` of the torch-side object; for scope
    ``layer`` a function ``inject(engine) -> list of sites`` (each site has ``layer_idx``, ``path``, an
    ``adapters`` ModuleDict, ``add(name, config) -> bool`` and ``remove(name)``), for scope ``model`` a
    factory ``factory(engine) -> extension`` (see ``methods/registry.py``). ``describe``: the short name of
    a config (``method_name``); by default the method's name.
    """

    name: str
    config_class: type
    presets: Mapping[str, Callable[[], MethodConfig]]
    segments: tuple
    scope: str
    attach: str
    architecture_keys: tuple = ()
    describe: Optional[Callable[[MethodConfig], str]] = None
    leave_out_on_load: bool = False  # load_adapter(leave_out=...) may drop layers of this method
    # per-layer methods with model-wide modules too (bottleneck: invertible blocks, shared PHM parameters):
    # "package.module:factory" of one engine extension per model, added to after each adapter's per-layer modules
    model_parts: Optional[str] = None

    def __post_init__(self) -> None:
        if self.scope not in SCOPES:
            raise ValueError(f"method {self.name!r}: scope must be one of {SCOPES}, got {self.scope!r}")
        if ":" not in self.attach:
            raise ValueError(f"method {self.name!r}: attach must be 'package.module:name', got {self.attach!r}")
        if self.model_parts is not None and (self.scope != "layer" or ":" not in self.model_parts):
            raise ValueError(f"method {self.name!r}: model_parts must be 'package.module:name' of a per-layer method")
        if not self.segments or not all(isinstance(s, str) and s and "." not in s for s in self.segments):
            raise ValueError(f"method {self.name!r}: segments must be non-empty names without '.'")
        if not (isinstance(self.config_class, type) and issubclass(self.config_class, MethodConfig)):
            raise ValueError(f"method {self.name!r}: config_class must be a MethodConfig subclass")

    @property
    def aliases(self) -> dict:
        """Alias -> preset name, for the aliases (rules.METHOD_ALIASES) that point at this method."""
        return {alias: target for alias, target in METHOD_ALIASES.items() if target in self.presets}

    def short_name(self, config: MethodConfig) -> str:
        return self.describe(config) if self.describe is not None else self.name

    def resolve_attach(self):
        """The torch-side object named by ``attach`` (imported now, never by the torch-free side)."""
        module_name, _, attr = self.attach.partition(":")
        target = importlib.import_module(module_name)
        for part in attr.split("."):
            target = getattr(target, part)
        return target


_METHODS: dict[str, MethodSpec] = {}
_SEGMENT_CACHE: list = [()]  # every method's segments, recomputed when the registry changes (hot in save/load)


def _registry_changed() -> None:
    _SEGMENT_CACHE[0] = tuple(s for spec in _METHODS.values() for s in spec.segments)


def register_method(spec: MethodSpec) -> MethodSpec:
    """Add ``spec`` to the registry; a name, preset, architecture key or segment already taken is an error."""
    if spec.name in _METHODS:
        raise ValueError(f"a method named {spec.name!r} is already registered")
    for other in _METHODS.values():
        for kind, mine, theirs in (("preset", spec.presets, other.presets),
                                   ("architecture key", spec.architecture_keys, other.architecture_keys),
                                   ("segment", spec.segments, other.segments)):
            clash = sorted(set(mine) & set(theirs), key=str)
            if clash:
                raise ValueError(f"method {spec.name!r}: {kind} {clash[0]!r} belongs to {other.name!r}")
    if set(spec.segments) & set(FUSION_SEGMENTS):
        raise ValueError(f"method {spec.name!r}: segment names of fusion layers are reserved")
    _METHODS[spec.name] = spec
    _registry_changed()
    return spec


def unregister_method(name: str) -> None:
    """Remove a method (tests that register a method of their own clean up with this)."""
    del _METHODS[name]
    _registry_changed()


def registered_methods() -> tuple:
    """Every registered MethodSpec, in registration order."""
    return tuple(_METHODS.values())


def get_method(name: str) -> MethodSpec:
    try:
        return _METHODS[name]
    except KeyError:
        raise InvalidAdapterConfig(f"unknown adapter method {name!r}", field="architecture") from None


def method_for_config(config) -> MethodSpec:
    """The method of a config object; InvalidAdapterConfig for a config no method registered."""
    for spec in _METHODS.values():
        if isinstance(config, spec.config_class):
            return spec
    raise InvalidAdapterConfig(f"method {type(config).__name__} is not supported", field="architecture")


def method_for_architecture(architecture) -> Optional[MethodSpec]:
    """The method a config dict's ``"architecture"`` value names (None: no method)."""
    for spec in _METHODS.values():
        if architecture in spec.architecture_keys:
            return spec
    return None


def architecture_names() -> list:
    """The ``"architecture"`` values config dicts may carry, as written in error messages."""
    return [key for spec in _METHODS.values() for key in spec.architecture_keys if key is not None]


class _Presets(Mapping):
    """Preset name -> config factory of every registered method (a live view of the registry)."""

    def __getitem__(self, name: str):
        for spec in _METHODS.values():
            if name in spec.presets:
                return spec.presets[name]
        raise KeyError(name)

    def __iter__(self) -> Iterator[str]:
        return (name for spec in _METHODS.values() for name in spec.presets)

    def __len__(self) -> int:
        return sum(len(spec.presets) for spec in _METHODS.values())

    def __repr__(self) -> str:
        return f"PRESETS({list(self)})"


class _Segments(Sequence):
    """State-dict segment names (``<segment>.<adapter name>.`` in a key): a live view of the registry.

    ``ADAPTER_SEGMENTS`` is the one object that saving, loading and whole-model saving use.
    """

    def __init__(self, fusion: bool):
        self._fusion = fusion

    def _names(self) -> tuple:
        return FUSION_SEGMENTS if self._fusion else _SEGMENT_CACHE[0]

    def __getitem__(self, index):
        return self._names()[index]

    def __len__(self) -> int:
        return len(self._names())

    def __iter__(self) -> Iterator[str]:
        return iter(self._names())

    def __contains__(self, item) -> bool:
        return item in self._names()

    def __repr__(self) -> str:
        return repr(self._names())


PRESETS: Mapping = _Presets()
ADAPTER_SEGMENTS: Sequence = _Segments(fusion=False)
FUSION_SEGMENT_NAMES: Sequence = _Segments(fusion=True)


def segment_of(key: str, segments: Sequence = ADAPTER_SEGMENTS) -> Optional[str]:
    """The segment a state-dict key lies under (``....<segment>.<name>....``), or None."""
    for segment in segments:
        if key.startswith(f"{segment}.") or f".{segment}." in key:
            return segment
    return None


def is_adapter_key(key: str) -> bool:
    """True for a state-dict key of an adapter, a prefix/prompt pool or a fusion layer (not the backbone)."""
    return segment_of(key) is not None or segment_of(key, FUSION_SEGMENT_NAMES) is not None


# --- the built-in methods ---------------------------------------------------------------------------
def _bottleneck_name(config: BnConfig) -> str:
    """The library's preset a bottleneck config is built like: Compacter (PHM layers) and invertible adapters by
    their own names, so the hub lists and resolves them as what they are."""
    if config.is_parallel:
        return "par_bn"
    double = config.mh_adapter and config.output_adapter
    if config.phm_layer:
        return "compacter" if double else "compacter++"
    name = "double_seq_bn" if double else "seq_bn"
    return f"{name}_inv" if config.inv_adapter else name


def _lora_name(config: LoRAConfig) -> str:
    if isinstance(config, MTLLoRAConfig):
        return "mtl_lora"
    if config.composition_mode == "scale":
        return "ia3"
    if config.is_vera:
        return "dvora" if config.use_dora else "vera"
    return "dora" if config.use_dora else "lora"


register_method(MethodSpec(
    name="bottleneck",
    config_class=BnConfig,
    presets={
        "seq_bn": SeqBnConfig,
        "double_seq_bn": DoubleSeqBnConfig,
        "par_bn": ParBnConfig,
        "scaled_par_bn": lambda: ParBnConfig(scaling="learned"),
        "seq_bn_inv": SeqBnInvConfig,
        "double_seq_bn_inv": DoubleSeqBnInvConfig,
        "compacter": CompacterConfig,
        "compacter++": CompacterPlusPlusConfig,
    },
    # invertible blocks at model level; Compacter's shared PHM parameters live under "shared_parameters", a
    # segment the lora registration holds (VeRA keeps its shared A/B there too: one segment, two methods)
    segments=("adapters", "invertible_adapters"),
    scope="layer",
    attach="adapters_client.methods.bottleneck:inject",
    model_parts="adapters_client.methods.invertible:BottleneckModelParts",
    architecture_keys=(None, "bottleneck"),
    describe=_bottleneck_name,
    leave_out_on_load=True,
))
register_method(MethodSpec(
    name="lora",
    config_class=LoRAConfig,
    presets={"lora": LoRAConfig, "ia3": IA3Config, "dora": DoRAConfig, "vera": VeraConfig, "dvora": DvoRAConfig,
             "mtl_lora": MTLLoRAConfig},
    # VeRA's frozen A/B, shared by every layer, live once under the base model (the library's key names); MTL-LoRA's
    # shared A/B (share_parameters) under each projection's shared_parameters.<share name>
    segments=("loras", "shared_parameters"),
    scope="layer",
    attach="adapters_client.methods.lora:inject",
    architecture_keys=("lora", "mtl_lora"),  # "mtl_lora": MTLLoRAConfig (methods/lora/mtl.py)
    describe=_lora_name,
    leave_out_on_load=True,
))
register_method(MethodSpec(
    name="prefix_tuning",
    config_class=PrefixTuningConfig,
    presets={"prefix_tuning": PrefixTuningConfig, "prefix_tuning_flat": lambda: PrefixTuningConfig(flat=True)},
    # the adapters library keeps gated prefixes' gates under "prefix_gates" (gating is refused here for now)
    segments=("prefix_tunings", "prefix_gates"),
    scope="model",
    attach="adapters_client.methods.prefix_tuning:PrefixTuning",
    architecture_keys=("prefix_tuning",),
))
register_method(MethodSpec(
    name="prompt_tuning",
    config_class=PromptTuningConfig,
    presets={"prompt_tuning": PromptTuningConfig},
    segments=("prompt_tunings",),
    scope="model",
    attach="adapters_client.methods.prompt_tuning:PromptTuning",
    architecture_keys=("prompt_tuning",),
))
register_method(MethodSpec(
    name="reft",
    config_class=ReftConfig,
    presets={"loreft": LoReftConfig, "noreft": NoReftConfig, "direft": DiReftConfig},
    # the library's key: <layer>.reft_layer.refts.<name>.units.<i>...
    segments=("refts",),
    scope="layer",
    attach="adapters_client.methods.reft:inject",
    # reads each forward's attention mask (the rows' first and last attended tokens) for the sites
    model_parts="adapters_client.methods.reft:ReftModelParts",
    architecture_keys=("reft",),
    describe=reft_name,
))
