"""In one process: the cold and the warm validation of a seq_bn adapter on MiniLM against a plain
load-adapter-and-forward of the same adapter, in interleaved rounds (medians).

- cold validation: ``validate_folder`` with an empty backbone cache (the backbone is loaded);
- warm validation: ``validate_folder`` with the backbone already in the cache;
- plain warm: ``load_adapter`` (with its head) onto an already loaded backbone and one forward pass of the
  same probe texts, the way a user runs an adapter (the adapter is removed again, untimed);
- plain cold: load the backbone, then the same.
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path

KINDS = ("cold_validation", "warm_validation", "plain_cold", "plain_warm")


def build_adapter(backbone_folder: str, out: Path, model_name: str, seed: int = 0) -> Path:
    """A seq_bn adapter with a 2-label classification head on the backbone, weights drawn at random."""
    import torch

    from adapters_client import AutoAdapterModel

    torch.manual_seed(seed)
    model = AutoAdapterModel.from_pretrained(backbone_folder)
    model.add_adapter("sst2", config="seq_bn")
    with torch.no_grad():
        for module in model.get_adapter("sst2"):
            for param in module.parameters():
                param.copy_(torch.randn(param.shape) * 0.05)
    model.add_classification_head("sst2", num_labels=2, id2label={0: "negative", 1: "positive"})
    model.save_adapter(str(out), "sst2", with_head=True)
    for name in ("adapter_config.json", "head_config.json"):
        path = out / name
        data = json.loads(path.read_text(encoding="utf-8"))
        data["model_name"] = model_name
        path.write_text(json.dumps(data, indent=2), encoding="utf-8")
    return out


class Plain:
    """A user's model: the backbone (loaded once, or again for the cold variant) and the probe batch."""

    def __init__(self, backbone_folder: str):
        from transformers import AutoTokenizer

        from validator.loading import PROBE_LENGTH, PROBE_TEXTS

        self.folder = backbone_folder
        tokenizer = AutoTokenizer.from_pretrained(backbone_folder)
        self.batch = dict(tokenizer(list(PROBE_TEXTS), padding="max_length", truncation=True,
                                    max_length=PROBE_LENGTH, return_tensors="pt"))
        self.model = self.load_backbone()

    def load_backbone(self):
        from adapters_client import AutoAdapterModel

        return AutoAdapterModel.from_pretrained(self.folder).eval()

    def load_and_forward(self, adapter: Path, model=None) -> float:
        """Seconds for load_adapter (with its head) and one forward pass; the adapter is removed after."""
        import torch

        model = model if model is not None else self.model
        started = time.perf_counter()
        name = model.load_adapter(str(adapter), set_active=True)
        with torch.no_grad():
            output = model(**self.batch)
        seconds = time.perf_counter() - started
        assert torch.isfinite(output.logits).all()
        model.delete_head(name)
        model.delete_adapter(name)
        return seconds

    def cold(self, adapter: Path) -> float:
        started = time.perf_counter()
        model = self.load_backbone()
        return (time.perf_counter() - started) + self.load_and_forward(adapter, model)


def _validation(adapter: Path, model_name: str, cache) -> tuple[float, dict]:
    from validator.pipeline import validate_folder

    started = time.perf_counter()
    report = validate_folder(adapter, model_name, cache=cache)
    seconds = time.perf_counter() - started
    if not report.valid:
        raise SystemExit(f"the benchmark adapter did not validate: {report.to_json()}")
    return seconds, report.check("backbone").figures


def run_rounds(backbone_folder: str, model_name: str, adapter: Path, rounds: int) -> dict:
    """{kind: [seconds per round]} plus the backbone check's figures, kinds interleaved and rotated."""
    from validator.loading import BackboneCache

    warm_cache = BackboneCache(device="cpu")
    _validation(adapter, model_name, warm_cache)  # loads the backbone into the warm cache (untimed)
    plain = Plain(backbone_folder)
    plain.load_and_forward(adapter)  # first-call costs (imports, allocator) are not measured
    times = {kind: [] for kind in KINDS}
    cached = {"cold_validation": [], "warm_validation": []}

    def cold_validation():
        seconds, figures = _validation(adapter, model_name, BackboneCache(device="cpu"))
        cached["cold_validation"].append(figures["cached"])
        return seconds

    def warm_validation():
        seconds, figures = _validation(adapter, model_name, warm_cache)
        cached["warm_validation"].append(figures["cached"])
        return seconds

    steps = {"cold_validation": cold_validation, "warm_validation": warm_validation,
             "plain_cold": lambda: plain.cold(adapter), "plain_warm": lambda: plain.load_and_forward(adapter)}
    for index in range(rounds):
        order = KINDS[index % len(KINDS):] + KINDS[:index % len(KINDS)]
        for kind in order:
            times[kind].append(steps[kind]())
    return {"times": times, "cached": cached}


def summarise(result: dict) -> dict:
    medians = {kind: statistics.median(values) for kind, values in result["times"].items()}
    return {
        "medians": medians,
        "warm_ratio": medians["warm_validation"] / medians["plain_warm"],
        "cold_ratio": medians["cold_validation"] / medians["plain_cold"],
        "cold_vs_plain_warm": medians["cold_validation"] / medians["plain_warm"],
        "cold_loaded_every_time": not any(result["cached"]["cold_validation"]),
        "warm_always_cached": all(result["cached"]["warm_validation"]),
    }
