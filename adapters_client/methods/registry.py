"""Model-level methods (prefix tuning, prompt tuning): one object per model and method."""

from __future__ import annotations

from ..configs import PrefixTuningConfig, PromptTuningConfig
from ..errors import InvalidAdapterConfig


def extension_for(engine, config):
    """The engine's object for ``config``'s method, created on first use."""
    if isinstance(config, PrefixTuningConfig):
        key = "prefix_tuning"
        from .prefix_tuning import PrefixTuning as factory
    elif isinstance(config, PromptTuningConfig):
        key = "prompt_tuning"
        from .prompt_tuning import PromptTuning as factory
    else:
        raise InvalidAdapterConfig(f"no model-level method for {type(config).__name__}", field="architecture")
    if key not in engine.extensions:
        engine.extensions[key] = factory(engine)
    return engine.extensions[key]
