"""LoRA and (IA)^3 (LoRA with ``composition_mode="scale"``)."""

from torch import nn

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
        if spec.cross_lora_attn and engine.is_decoder_layer(idx):  # the decoder's cross-attention (the library's)
            targets += [(LoRALayer, path, "selfattn", key) for key, path in spec.cross_lora_attn.items()]
        if spec.merged_qkv:
            targets.append((MergedQKVLoRALayer, spec.merged_qkv, "selfattn", None))
        intermediate = spec.lora_intermediate
        if spec.gated_lora_intermediate and _has_path(layer, spec.gated_lora_intermediate):
            intermediate = spec.gated_lora_intermediate  # gated FF (T5 v1.1 / Flan-T5: wi_1), as the library
        targets += [(LoRALayer, intermediate, "intermediate", None),
                    (LoRALayer, spec.lora_output, "output", None)]
        for cls, path, location, key in targets:
            sites.append(cls(engine, get_path(layer, path, spec.model_type), idx, location, key,
                             path=f"{engine.layer_path(idx)}.{path}"))
    return sites


def _has_path(layer, path: str) -> bool:
    node = layer
    for part in path.split("."):
        node = node[int(part)] if part.lstrip("-").isdigit() and isinstance(node, nn.ModuleList) else \
            getattr(node, part, None)
        if node is None:
            return False
    return True
