"""Adapter methods, one package each: bottleneck, lora (with IA3), prefix_tuning, prompt_tuning."""
