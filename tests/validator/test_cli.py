"""``python -m validator``: readable report or JSON, exit 0 valid, 1 rejected, 2 usage or platform error."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.validator.factories import edit_weights
from validator.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_valid_adapter_prints_a_readable_report_and_exits_0(adapter, backbone_dir, capsys):
    assert main([str(adapter()), "--backbone", str(backbone_dir)]) == 0
    out = capsys.readouterr().out
    assert out.startswith("verdict: VALID")
    for name in ("files", "backbone", "config", "weights", "finite", "load", "forward", "head"):
        assert f"ok  {name}" in out


def test_rejected_adapter_exits_1_with_json(adapter, backbone_dir, capsys):
    folder = adapter()
    edit_weights(folder, lambda t: [v.fill_(float("nan")) for k, v in t.items() if "adapter_up.weight" in k])
    assert main([str(folder), "--backbone", str(backbone_dir), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["verdict"] == "rejected" and report["codes"] == ["non_finite_weights"]
    assert all("adapter_up.weight" in p["key"] for p in report["checks"][4]["problems"])
    assert report["backbone"]["weights_sha256"] and report["checks"][0]["seconds"] >= 0


def test_rejected_text_report_names_the_code_and_key(adapter, backbone_dir, capsys):
    folder = adapter()
    edit_weights(folder, lambda t: t.pop(next(k for k in sorted(t) if "adapter_up.bias" in k)))
    assert main([str(folder), "--backbone", str(backbone_dir)]) == 1
    out = capsys.readouterr().out
    assert out.startswith("verdict: REJECTED  (missing_keys)")
    assert "- missing_keys: bert.encoder.layer.0.output.adapters.demo.adapter_up.bias" in out


def test_unknown_backbone_name_is_a_rejection(adapter, capsys):
    assert main([str(adapter()), "--backbone", "no-such/model", "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["codes"] == ["unknown_backbone"]


def test_allow_list_file_and_platform_errors_exit_2(adapter, tmp_path, capsys):
    listing = tmp_path / "backbones.json"
    listing.write_text(json.dumps({"gone": {"source": "folder", "path": str(tmp_path / "nowhere")}}))
    assert main([str(adapter()), "--backbone", "gone", "--allow-list", str(listing), "--json"]) == 2
    captured = capsys.readouterr()
    assert json.loads(captured.out)["code"] == "backbone_unavailable" and "backbone_unavailable" in captured.err
    listing.write_text("not json")
    assert main([str(adapter()), "--backbone", "gone", "--allow-list", str(listing)]) == 2
    assert "invalid_allow_list" in capsys.readouterr().err


def test_usage_errors_exit_2(tmp_path, capsys):
    assert main([str(tmp_path / "missing"), "--backbone", "x"]) == 2
    with pytest.raises(SystemExit) as caught:
        main([str(tmp_path)])  # no --backbone
    assert caught.value.code == 2


def test_python_dash_m_validator(adapter, backbone_dir):
    env = {**os.environ, "PYTHONPATH": ROOT, "HF_HUB_OFFLINE": "1"}
    env.pop("DJANGO_SETTINGS_MODULE", None)
    done = subprocess.run([sys.executable, "-m", "validator", str(adapter()), "--backbone", str(backbone_dir),
                           "--json"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["verdict"] == "valid"
