"""Upload bodies for the load test and the soak: valid adapter folders and hostile variants.

A valid folder is what ``adapters_client`` writes for a seq_bn adapter on a 2-layer BERT with
hidden size 32: adapter_config.json (built by the client's own builder) and adapter.safetensors.
"""

from __future__ import annotations

import io
import json
import pickle
import struct
import uuid
import zipfile

import numpy as np
from safetensors.numpy import save as save_safetensors

HIDDEN = 32
LAYERS = 2


def adapter_config(name: str = "soak") -> bytes:
    from adapters_client.configs.files import build_adapter_config_json

    data = build_adapter_config_json("seq_bn", name, {"hidden_size": HIDDEN, "model_type": "bert"},
                                     model_class="BertAdapterModel", model_name="")
    return json.dumps(data, indent=2).encode()


def adapter_weights(seed: int, name: str = "soak") -> bytes:
    """seq_bn weights (reduction factor 16) for every layer; ``seed`` makes the bytes unique."""
    rng = np.random.default_rng(seed)
    tensors = {}
    down = HIDDEN // 16
    for layer in range(LAYERS):
        prefix = f"bert.encoder.layer.{layer}.output.adapters.{name}"
        tensors[f"{prefix}.adapter_down.0.weight"] = rng.standard_normal((down, HIDDEN), dtype=np.float32)
        tensors[f"{prefix}.adapter_down.0.bias"] = np.zeros(down, dtype=np.float32)
        tensors[f"{prefix}.adapter_up.weight"] = rng.standard_normal((HIDDEN, down), dtype=np.float32)
        tensors[f"{prefix}.adapter_up.bias"] = np.zeros(HIDDEN, dtype=np.float32)
    return save_safetensors(tensors)


def valid_files(seed: int) -> list[tuple[str, bytes]]:
    return [("adapter_config.json", adapter_config()), ("adapter.safetensors", adapter_weights(seed))]


def multipart(fields: dict, files: list[tuple[str, bytes]], file_field: str = "files") -> tuple[bytes, str]:
    """A multipart/form-data body, encoded by hand so that names reach the server unaltered."""
    boundary = "----soak" + uuid.uuid4().hex
    parts = [f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n'.encode()
             for k, v in fields.items()]
    for name, content in files:
        head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n")
        parts.append(head.encode() + content + b"\r\n")
    parts.append(f"--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


# --- Hostile variants: (kind, files, expected status, expected code) --------------------------

def _raw_safetensors(header: bytes, data: bytes = b"", length: int | None = None) -> bytes:
    return struct.pack("<Q", len(header) if length is None else length) + header + data


def _zip(files: list[tuple[str, bytes]]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, content in files:
            zf.writestr(name, content)
    return buffer.getvalue()


def _damaged_zip(seed: int) -> bytes:
    """A zip whose member's compressed data is overwritten in the middle (the CRC no longer matches)."""
    data = bytearray(_zip(valid_files(seed)))
    start = 60
    data[start:start + 40] = bytes(40)
    return bytes(data)


def hostile(seed: int) -> list[tuple[str, list[tuple[str, bytes]], str, int, str]]:
    """Refused uploads: (kind, files, file field, expected status, expected code)."""
    config = adapter_config()
    weights = adapter_weights(seed)
    pickled = pickle.dumps({"weight": list(range(10))}, protocol=4)
    deep = b'{"config": ' + b"[" * 5000 + b"]" * 5000 + b"}"
    return [
        ("pickle-as-safetensors", [("adapter_config.json", config), ("adapter.safetensors", pickled)],
         "files", 415, "pickle_not_accepted"),
        ("pickle-file", [("adapter_config.json", config), ("pytorch_adapter.bin", pickled)],
         "files", 415, "pickle_not_accepted"),
        ("safetensors-header-too-long", [("adapter_config.json", config),
                                         ("adapter.safetensors", _raw_safetensors(b"{}", length=10**9))],
         "files", 400, "invalid_safetensors"),
        ("safetensors-bad-offsets", [("adapter_config.json", config), ("adapter.safetensors", _raw_safetensors(
            json.dumps({"w": {"dtype": "F32", "shape": [4], "data_offsets": [0, 64]}}).encode(), bytes(16)))],
         "files", 400, "invalid_safetensors"),
        ("safetensors-garbage", [("adapter_config.json", config), ("adapter.safetensors", b"\x01" * 5)],
         "files", 400, "invalid_safetensors"),
        ("config-nested", [("adapter_config.json", deep), ("adapter.safetensors", weights)],
         "files", 400, "invalid_config"),
        ("config-remote-code", [("adapter_config.json", json.dumps(
            {**json.loads(config), "auto_map": {"AutoModel": "x.Y"}}).encode()), ("adapter.safetensors", weights)],
         "files", 400, "invalid_config"),
        ("filename-traversal", [("adapter_config.json", config), ("../adapter.safetensors", weights)],
         "files", 400, "invalid_filename"),
        ("archive-damaged", [("adapter.zip", _damaged_zip(seed))], "archive", 400, "invalid_archive"),
    ]
