"""LoRA and (IA)^3 (LoRA with ``composition_mode="scale"``)."""

from ...architectures import get_path
from .layer import LoRALayer
from .merged import MergedQKVLoRALayer
from .modules import IA3, LoRA, make_lora

__all__ = ["IA3", "LoRA", "LoRALayer", "MergedQKVLoRALayer", "inject", "make_lora"]


def inject(engine) -> list:
    """One site per projection LoRA can wrap (q/k/v or the fused q/k/v, FFN in and out) of every layer."""
    spec = engine.spec
    sites = []
    for idx, layer in enumerate(engine.layers()):
        targets = [(LoRALayer, path, "selfattn", key) for key, path in spec.lora_attn.items()]
        if spec.merged_qkv:
            targets.append((MergedQKVLoRALayer, spec.merged_qkv, "selfattn", None))
        targets += [(LoRALayer, spec.lora_intermediate, "intermediate", None),
                    (LoRALayer, spec.lora_output, "output", None)]
        for cls, path, location, key in targets:
            sites.append(cls(engine, get_path(layer, path, spec.model_type), idx, location, key,
                             path=f"{spec.layers}.{idx}.{path}"))
    return sites
