"""Structural check of a safetensors file, reading only its header.

Format: 8 bytes little-endian header length N, N bytes of UTF-8 JSON (an object mapping
tensor names to {dtype, shape, data_offsets}, plus an optional "__metadata__" of strings),
then the data buffer. Every byte of the buffer must belong to exactly one tensor.
"""

from __future__ import annotations

import json
import math
import os
import struct
from dataclasses import dataclass

from adapters_client.rules import MAX_JSON_DEPTH, json_too_deep
from django.conf import settings

from ..errors import InvalidSafetensors
from .files import check_not_pickle

DTYPE_SIZES = {
    "BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "F8_E8M0": 1,
    "I16": 2, "U16": 2, "F16": 2, "BF16": 2,
    "I32": 4, "U32": 4, "F32": 4,
    "I64": 8, "U64": 8, "F64": 8,
}
METADATA_KEY = "__metadata__"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    dtype: str
    shape: tuple[int, ...]
    begin: int
    end: int


class _DuplicateKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _no_duplicates(pairs):
    obj = {}
    for key, value in pairs:
        if key in obj:
            raise _DuplicateKey(key)
        obj[key] = value
    return obj


def _fail(name: str, detail: str, **extra) -> InvalidSafetensors:
    return InvalidSafetensors(f"{name}: {detail}", filename=name, **extra)


def read_header(path: str, name: str) -> tuple[dict, int]:
    """Return the parsed header and the size of the data buffer; refuse before parsing when unsafe."""
    size = os.path.getsize(path)
    if size < 8:
        raise _fail(name, f"file has {size} bytes; a safetensors file starts with an 8-byte header length")
    cap = settings.HUB_MAX_SAFETENSORS_HEADER_BYTES
    with open(path, "rb") as fh:
        (length,) = struct.unpack("<Q", fh.read(8))
        if length > cap:
            raise _fail(name, f"header length {length} is over the limit of {cap} bytes")
        if length > size - 8:
            raise _fail(name, f"header length {length} is larger than the file ({size} bytes)")
        raw = fh.read(length)
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _fail(name, "header is not UTF-8") from None
    if not text.lstrip().startswith("{"):
        raise _fail(name, "header is not a JSON object")
    if json_too_deep(raw):
        raise _fail(name, f"header is nested more than {MAX_JSON_DEPTH} levels deep (or unbalanced brackets)")
    try:
        header = json.loads(text, object_pairs_hook=_no_duplicates)
    except RecursionError:
        raise _fail(name, f"header is nested more than {MAX_JSON_DEPTH} levels deep") from None
    except _DuplicateKey as exc:
        raise _fail(name, f"duplicate tensor name {exc.key!r} in the header", tensor=exc.key) from None
    except ValueError as exc:
        raise _fail(name, f"header is not valid JSON ({exc})") from None
    if not isinstance(header, dict):
        raise _fail(name, "header is not a JSON object")
    return header, size - 8 - length


def _tensor_info(name: str, key: str, entry) -> TensorInfo:
    if not isinstance(entry, dict):
        raise _fail(name, f"tensor {key!r}: entry is not an object", tensor=key)
    dtype, shape, offsets = entry.get("dtype"), entry.get("shape"), entry.get("data_offsets")
    if dtype not in DTYPE_SIZES:
        raise _fail(name, f"tensor {key!r}: unknown dtype {dtype!r}", tensor=key)
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise _fail(name, f"tensor {key!r}: shape must be a list of non-negative integers", tensor=key)
    if (
        not isinstance(offsets, list) or len(offsets) != 2
        or not all(type(o) is int and o >= 0 for o in offsets) or offsets[0] > offsets[1]
    ):
        raise _fail(name, f"tensor {key!r}: data_offsets must be [begin, end] with 0 <= begin <= end", tensor=key)
    expected = math.prod(shape) * DTYPE_SIZES[dtype]
    if offsets[1] - offsets[0] != expected:
        raise _fail(
            name,
            f"tensor {key!r}: shape {shape} x {dtype} needs {expected} bytes but data_offsets span "
            f"{offsets[1] - offsets[0]}",
            tensor=key,
        )
    return TensorInfo(key, dtype, tuple(shape), offsets[0], offsets[1])


def _check_layout(name: str, tensors: list[TensorInfo], data_size: int) -> None:
    """The tensors must tile the data buffer exactly: no overlap, no gap, nothing out of range."""
    position = 0
    for info in sorted(tensors, key=lambda t: (t.begin, t.end)):
        if info.end > data_size:
            raise _fail(name, f"tensor {info.name!r}: data_offsets end {info.end} is beyond the data "
                              f"({data_size} bytes)", tensor=info.name)
        if info.begin < position:
            raise _fail(name, f"tensor {info.name!r}: data overlaps the previous tensor", tensor=info.name)
        if info.begin > position:
            raise _fail(name, f"tensor {info.name!r}: gap of {info.begin - position} bytes before its data",
                        tensor=info.name)
        position = info.end
    if position != data_size:
        raise _fail(name, f"{data_size - position} bytes after the last tensor belong to no tensor")


def check_safetensors(path: str, name: str) -> dict[str, TensorInfo]:
    """Check a safetensors file without loading its data; returns its tensors by name."""
    check_not_pickle(path, name)
    header, data_size = read_header(path, name)
    metadata = header.pop(METADATA_KEY, None)
    if metadata is not None and (
        not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values())
    ):
        raise _fail(name, "__metadata__ must map strings to strings")
    if not header:
        raise _fail(name, "the file holds no tensors")
    tensors = [_tensor_info(name, key, entry) for key, entry in header.items()]
    _check_layout(name, tensors, data_size)
    return {t.name: t for t in tensors}
