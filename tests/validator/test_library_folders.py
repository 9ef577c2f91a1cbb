"""Folders saved by the ``adapters`` library 1.3.0 (second virtualenv) pass the validator (pickled ones after
``adapters-client convert``); its pickles themselves do not."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from adapters_client.convert import convert_folder

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
REF_PYTHON = os.path.join(ROOT, ".venv-ref", "bin", "python")
METHODS = ("seq_bn", "double_seq_bn", "lora", "ia3", "prompt_tuning", "par_bn", "seq_bn_inv",
           "compacter[reduction_factor=4]", "dora", "vera", "loreft[r=32]", "noreft", "mam", "unipelt", "prefix_tuning")
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
    try:
        model.save_adapter(f"{out}/{method.split('[')[0]}", "x", use_safetensors=True)
    except RuntimeError:  # tied tensors (prefix tuning): the library can only pickle them
        model.save_adapter(f"{out}/{method.split('[')[0]}", "x")
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
    pickled_only = []
    for method in (m.split("[")[0] for m in METHODS):
        folder = tmp_path / method
        if (folder / "pytorch_adapter.bin").exists():  # what `adapters-client convert` is for
            pickled_only.append(method)
            assert validate(folder).codes == ["pickle_not_accepted"]  # as uploaded
            folder = Path(convert_folder(folder, tmp_path / f"{method}-converted")["path"])
        report = validate(folder)
        assert report.verdict == "valid", report.to_json()
        assert report.adapter.method == method and report.adapter.head_type == "classification"
    assert pickled_only == ["mam", "unipelt", "prefix_tuning"]  # the methods with a prefix pool
    assert validate(tmp_path / "pickled").codes == ["pickle_not_accepted"]
