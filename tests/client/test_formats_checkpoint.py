"""Torch-free inspection of safetensors files (used by the hub on upload)."""

from __future__ import annotations

import json
import pickle
import struct
import subprocess
import sys

import pytest
import torch
from safetensors.torch import save

from adapters_client.checkpoint import inspect_safetensors
from adapters_client.errors import IncompatibleAdapter


def _file(tensors: dict) -> bytes:
    return save(tensors)


def test_header_lists_tensors(tmp_path):
    data = _file({"a.weight": torch.zeros(2, 3), "b": torch.ones(4, dtype=torch.float16)})
    (tmp_path / "w.safetensors").write_bytes(data)
    expected = {"a.weight": {"dtype": "F32", "shape": [2, 3]}, "b": {"dtype": "F16", "shape": [4]}}
    assert inspect_safetensors(data) == expected
    assert inspect_safetensors(tmp_path / "w.safetensors") == expected


def test_works_without_torch(tmp_path):
    (tmp_path / "w.safetensors").write_bytes(_file({"x": torch.zeros(3)}))
    code = ("import sys; sys.modules['torch'] = None\n"
            "from adapters_client.checkpoint import inspect_safetensors\n"
            f"print(inspect_safetensors({str(tmp_path / 'w.safetensors')!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "'shape': [3]" in result.stdout


def _header_file(header: dict, buffer: bytes = b"") -> bytes:
    raw = json.dumps(header).encode()
    return struct.pack("<Q", len(raw)) + raw + buffer


@pytest.mark.parametrize("data, match", [
    (pickle.dumps({"x": 1}), "pickled"),
    (b"PK\x03\x04zipfile", "pickled"),
    (b"abc", "too short"),
    (struct.pack("<Q", 10 ** 9) + b"{}", "damaged header"),
    (struct.pack("<Q", 4) + b"nope", "not JSON"),
    (_header_file([1, 2]), "not an object"),
    (_header_file({"x": {"dtype": "F99", "shape": [1], "data_offsets": [0, 4]}}, b"\0" * 4), "unknown dtype"),
    (_header_file({"x": {"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}}, b"\0" * 4), "invalid shape"),
    (_header_file({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}}, b"\0" * 4), "outside"),
    (_header_file({"x": {"dtype": "F32", "shape": [2], "data_offsets": [0, 4]}}, b"\0" * 4), "does not match"),
    (_header_file({"x": "bad"}), "malformed"),
])
def test_damaged_files_are_refused(data, match):
    with pytest.raises(IncompatibleAdapter, match=match):
        inspect_safetensors(data)
