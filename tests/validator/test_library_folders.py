"""Folders saved by the ``adapters`` library 1.3.0 (second virtualenv) pass the validator; its pickles do not."""

from __future__ import annotations

import os
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF_PYTHON = os.path.join(ROOT, ".venv-ref", "bin", "python")
METHODS = ("seq_bn", "double_seq_bn", "lora", "ia3", "prompt_tuning")
# Run in .venv-ref: one adapter with a 3-label head per method, random non-zero weights.
SAVE_WITH_LIBRARY = """
import sys, torch
from adapters import AutoAdapterModel
backbone, out, methods = sys.argv[1], sys.argv[2], sys.argv[3].split(",")
for method in methods:
    model = AutoAdapterModel.from_pretrained(backbone)
    model.add_adapter("x", config=method)
    model.add_classification_head("x", num_labels=3)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if ".x." in name or name.startswith("heads.x"):
                param.copy_(torch.randn(param.shape, generator=generator) * 0.05)
    model.save_adapter(f"{out}/{method}", "x", use_safetensors=True)
    if method == "seq_bn":
        model.save_adapter(f"{out}/pickled", "x")
"""


@pytest.mark.parity
def test_library_saved_adapters_validate(backbone_dir, tmp_path, validate):
    assert os.path.exists(REF_PYTHON), "the reference virtualenv .venv-ref is required (scripts/test.sh builds it)"
    env = {k: v for k, v in os.environ.items() if k != "DJANGO_SETTINGS_MODULE"}
    done = subprocess.run([REF_PYTHON, "-c", SAVE_WITH_LIBRARY, str(backbone_dir), str(tmp_path), ",".join(METHODS)],
                          capture_output=True, text=True, env={**env, "HF_HUB_OFFLINE": "1"}, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    for method in METHODS:
        report = validate(tmp_path / method)
        assert report.verdict == "valid", report.to_json()
        assert report.adapter.method == method and report.adapter.head_type == "classification"
    assert validate(tmp_path / "pickled").codes == ["pickle_not_accepted"]
