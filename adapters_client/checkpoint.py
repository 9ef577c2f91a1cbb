"""Torch-free checks of weight files (the hub reuses them on upload): safetensors header, no pickles."""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Union

from .errors import IncompatibleAdapter

_ITEM_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E4M3": 1, "F8_E5M2": 1, "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
               "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}
_MAX_HEADER = 100 * 1024 * 1024
_PICKLE_MAGICS = (b"\x80", b"PK\x03\x04")


def _read(source: Union[bytes, str, Path], limit: int | None = None) -> bytes:
    if isinstance(source, (bytes, bytearray)):
        return bytes(source)
    with open(source, "rb") as handle:
        return handle.read() if limit is None else handle.read(limit)


def inspect_safetensors(source: Union[bytes, str, Path], name: str = "adapter.safetensors") -> dict:
    """``{tensor name: {"dtype": str, "shape": [int]}}`` from a safetensors file's header.

    IncompatibleAdapter for pickled data, a damaged header, or offsets that do not fit the data.
    """
    data = _read(source)
    if data.startswith(_PICKLE_MAGICS):
        raise IncompatibleAdapter(f"{name} holds pickled data, not safetensors; pickles are never loaded",
                                  field=name)
    if len(data) < 8:
        raise IncompatibleAdapter(f"{name} is too short to be a safetensors file", field=name)
    (size,) = struct.unpack("<Q", data[:8])
    if size > min(_MAX_HEADER, len(data) - 8):
        raise IncompatibleAdapter(f"{name} has a damaged header (declared size {size})", field=name)
    try:
        header = json.loads(data[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise IncompatibleAdapter(f"{name} has a damaged header (not JSON)", field=name) from None
    if not isinstance(header, dict):
        raise IncompatibleAdapter(f"{name} has a damaged header (not an object)", field=name)
    buffer = len(data) - 8 - size
    tensors = {}
    for key, entry in header.items():
        if key == "__metadata__":
            continue
        tensors[key] = _check_entry(name, key, entry, buffer)
    return tensors


def _check_entry(name: str, key: str, entry, buffer: int) -> dict:
    if not isinstance(entry, dict):
        raise IncompatibleAdapter(f"{name}: entry {key!r} is malformed", field=name, key=key)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in _ITEM_SIZES:
        raise IncompatibleAdapter(f"{name}: tensor {key!r} has unknown dtype {dtype!r}", field=name, key=key)
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise IncompatibleAdapter(f"{name}: tensor {key!r} has an invalid shape", field=name, key=key)
    if (not isinstance(offsets, list) or len(offsets) != 2 or not all(isinstance(o, int) for o in offsets)
            or not 0 <= offsets[0] <= offsets[1] <= buffer):
        raise IncompatibleAdapter(f"{name}: tensor {key!r} points outside the file", field=name, key=key)
    count = 1
    for dim in shape:
        count *= dim
    if offsets[1] - offsets[0] != count * _ITEM_SIZES[dtype]:
        raise IncompatibleAdapter(f"{name}: tensor {key!r} size does not match its shape", field=name, key=key)
    return {"dtype": dtype, "shape": list(shape)}
