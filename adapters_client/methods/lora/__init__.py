"""LoRA and (IA)^3 (LoRA with ``composition_mode="scale"``)."""

from .layer import LoRALayer
from .modules import IA3, LoRA, make_lora

__all__ = ["IA3", "LoRA", "LoRALayer", "make_lora"]
