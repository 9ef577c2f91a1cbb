"""Golden parity cases: outputs of the ``adapters`` library 1.3.0, replayed with ``adapters_client``.

The cases live in ``cases/`` (written by ``make_golden.py``; see docs/golden-parity.md). This module reads
them and runs one case with OUR library; it never imports ``adapters``, so it works in both virtualenvs.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

CASES_DIR = Path(__file__).resolve().parent / "cases"
BACKBONES_DIR = CASES_DIR / "backbones"
DATA_FILE = "data.safetensors"
CASE_FILE = "case.json"
INPUT_PREFIX = "input."
EXPECTED_PREFIX = "expected."
OUTPUT_FIELDS = ("logits", "start_logits", "end_logits", "last_hidden_state")
ATOL = 1e-5


def case_dirs() -> list[Path]:
    """Every case folder (one ``case.json`` each), sorted."""
    return sorted(path.parent for path in CASES_DIR.rglob(CASE_FILE))


def case_id(folder: Path) -> str:
    return folder.relative_to(CASES_DIR).as_posix()


def read_case(folder: Path) -> tuple[dict, dict, dict]:
    """``(meta, inputs, expected)`` of one case folder."""
    from safetensors.torch import load_file

    meta = json.loads((folder / CASE_FILE).read_text(encoding="utf-8"))
    tensors = load_file(str(folder / DATA_FILE))
    inputs = {k[len(INPUT_PREFIX):]: v for k, v in tensors.items() if k.startswith(INPUT_PREFIX)}
    expected = {k[len(EXPECTED_PREFIX):]: v for k, v in tensors.items() if k.startswith(EXPECTED_PREFIX)}
    return meta, inputs, expected


def flatten_output(output) -> dict:
    """The prediction tensors of a model output: ``logits``..., or ``head<i>.<field>`` per branch."""
    branches = getattr(output, "head_outputs", None)
    if branches is not None:
        flat = {}
        for index, branch in enumerate(branches):
            flat.update({f"head{index}.{k}": v for k, v in flatten_output(branch).items()})
        return flat
    flat = {}
    for field in OUTPUT_FIELDS:
        value = output.get(field) if hasattr(output, "get") else getattr(output, field, None)
        if value is not None:
            flat[field] = value
    return flat


def our_setup(meta: dict):
    """The case's active setup as one of OUR composition blocks (or an adapter name, or None)."""
    from adapters_client.composition import setup_from_dict

    setup = meta["setup"]
    return setup_from_dict(setup) if isinstance(setup, dict) else setup


def build_ours(folder: Path, meta: dict):
    """OUR model for a case: backbone, adapters with heads, fusions, averaged adapter, active setup."""
    from adapters_client import AutoAdapterModel, init

    if meta.get("init_class"):  # the library wrapped this transformers class (its own head) with adapters.init
        import transformers

        model = init(getattr(transformers, meta["init_class"]).from_pretrained(
            str(folder / meta["backbone"]), attn_implementation=meta["attn_implementation"]))
    else:
        model = AutoAdapterModel.from_pretrained(str(folder / meta["backbone"]),
                                                 attn_implementation=meta["attn_implementation"])
    for name, relative in meta["adapters"].items():
        loaded = model.load_adapter(str(folder / relative), with_head=not meta.get("init_class"))
        assert loaded == name, f"adapter folder {relative} loaded as {loaded!r}, expected {name!r}"
    for relative in meta["fusions"].values():
        model.load_adapter_fusion(str(folder / relative))
    average = meta.get("average_adapter")
    if average:
        model.average_adapter(average["name"], average["adapters"], weights=average["weights"])
    model.set_active_adapters(our_setup(meta), skip_layers=meta["skip_layers"])
    if meta["active_head"] is not None:
        model.active_head = meta["active_head"]
    return model.eval()


def run_ours(model, inputs: dict) -> dict:
    """Forward pass in eval mode without gradients; the flattened outputs (works for the library's models too)."""
    model.eval()
    with torch.no_grad():
        return flatten_output(model(**inputs))


def rowwise(model, inputs: dict) -> dict:
    """Each row alone, cut to its attended length (right padding); pooled outputs (``logits``) only."""
    rows = []
    for row in range(inputs["input_ids"].shape[0]):
        length = int(inputs["attention_mask"][row].sum())
        rows.append(run_ours(model, {k: v[row:row + 1, :length] for k, v in inputs.items()}))
    assert all(set(r) == {"logits"} for r in rows), "row-wise runs are only for pooled heads"
    return {"logits": torch.cat([r["logits"] for r in rows])}


def max_diff(a: dict, b: dict) -> float:
    """The largest absolute difference over outputs with the same keys."""
    assert set(a) == set(b), (sorted(a), sorted(b))
    return max((a[k] - b[k]).abs().max().item() for k in a)


def compare(got: dict, expected: dict, keys: list, atol: float = ATOL) -> None:
    """Every key in ``keys`` is present in both and equal within ``atol`` (AssertionError naming the key)."""
    assert keys, "a case must compare at least one output"
    for key in keys:
        assert key in expected, f"expected output {key!r} is missing from the case data"
        assert key in got, f"our output lacks {key!r} (has {sorted(got)})"
        assert got[key].shape == expected[key].shape, f"{key}: shape {tuple(got[key].shape)} != " \
                                                      f"{tuple(expected[key].shape)}"
        diff = (got[key].float() - expected[key].float()).abs().max().item()
        assert diff <= atol, f"{key}: max abs difference {diff:.3g} > {atol}"
