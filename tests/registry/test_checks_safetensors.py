"""The safetensors check: header-only, refuses every malformed layout naming the tensor."""

from __future__ import annotations

import json
import pickle
import zipfile

import numpy as np
import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from safetensors.numpy import save as save_safetensors

from registry.checks import check_safetensors
from registry.errors import InvalidSafetensors, PickleNotAccepted

from .upload_helpers import adapter_weights, raw_safetensors


def _write(tmp_path, content: bytes, name="adapter.safetensors"):
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


def _check(tmp_path, content: bytes):
    return check_safetensors(_write(tmp_path, content), "adapter.safetensors")


def test_accepts_a_file_written_by_the_safetensors_library(tmp_path):
    tensors = _check(tmp_path, adapter_weights())
    assert len(tensors) == 8
    info = tensors["bert.encoder.layer.0.output.adapters.sst-2.adapter_down.0.weight"]
    assert info.dtype == "F32" and info.shape == (2, 32)


def test_accepts_metadata_and_several_dtypes(tmp_path):
    data = save_safetensors(
        {"a": np.ones((3,), dtype=np.float16), "b": np.ones((2, 2), dtype=np.int64), "c": np.ones((), np.float32)},
        metadata={"format": "pt"},
    )
    assert set(_check(tmp_path, data)) == {"a", "b", "c"}


@pytest.mark.parametrize("content", [b"", b"\x01\x00\x00", b"1234567"])
def test_file_under_8_bytes(tmp_path, content):
    with pytest.raises(InvalidSafetensors, match="8-byte header length"):
        _check(tmp_path, content)


def test_header_length_larger_than_file(tmp_path):
    with pytest.raises(InvalidSafetensors, match="larger than the file") as exc:
        _check(tmp_path, raw_safetensors({"a": 1}, length=10_000))
    assert exc.value.code == "invalid_safetensors" and exc.value.status == 400


def test_header_over_the_cap_is_refused_before_reading(tmp_path, settings):
    settings.HUB_MAX_SAFETENSORS_HEADER_BYTES = 64
    header = {"t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}, "__metadata__": {"x": "y" * 100}}
    with pytest.raises(InvalidSafetensors, match="over the limit of 64"):
        _check(tmp_path, raw_safetensors(header, b"\0" * 4))


def test_header_not_utf8(tmp_path):
    with pytest.raises(InvalidSafetensors, match="not UTF-8"):
        _check(tmp_path, raw_safetensors(b'{"\xff\xfe": 1}'))


@pytest.mark.parametrize("header", [b"[1, 2, 3]", b'"text"', b"42", b"   "])
def test_header_not_a_json_object(tmp_path, header):
    with pytest.raises(InvalidSafetensors, match="not a JSON object"):
        _check(tmp_path, raw_safetensors(header))


def test_header_invalid_json(tmp_path):
    with pytest.raises(InvalidSafetensors, match="not valid JSON"):
        _check(tmp_path, raw_safetensors(b'{"a": '))


def test_duplicate_tensor_names_are_named(tmp_path):
    entry = '{"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}'
    header = f'{{"w.weight": {entry}, "w.weight": {entry}}}'.encode()
    with pytest.raises(InvalidSafetensors, match="duplicate tensor name 'w.weight'") as exc:
        _check(tmp_path, raw_safetensors(header, b"\0" * 4))
    assert exc.value.extra["tensor"] == "w.weight"


def _two(a_offsets, b_offsets, data_len, b_shape=(1,)):
    return raw_safetensors(
        {"a": {"dtype": "F32", "shape": [1], "data_offsets": a_offsets},
         "b": {"dtype": "F32", "shape": list(b_shape), "data_offsets": b_offsets}},
        b"\0" * data_len,
    )


@pytest.mark.parametrize(
    "content, message, tensor",
    [
        (_two([0, 4], [2, 6], 8), "overlaps", "b"),
        (_two([0, 4], [8, 12], 12), "gap of 4 bytes", "b"),
        (_two([0, 4], [4, 8], 4), "beyond the data", "b"),
        (_two([0, 4], [4, 8], 8, b_shape=(2,)), r"shape \[2\] x F32 needs 8 bytes but data_offsets span 4", "b"),
        (_two([4, 0], [4, 8], 8), "0 <= begin <= end", "a"),
        (_two([0, 4], [4, 8], 9), "1 bytes after the last tensor", None),
        (_two([0, 4], [4, 8], 8, b_shape=(-1,)), "non-negative integers", "b"),
    ],
    ids=["overlap", "gap", "out-of-range", "shape-dtype", "reversed", "trailing", "negative-dim"],
)
def test_bad_layouts_name_the_tensor(tmp_path, content, message, tensor):
    with pytest.raises(InvalidSafetensors, match=message) as exc:
        _check(tmp_path, content)
    assert exc.value.extra.get("tensor") == tensor


def test_unknown_dtype(tmp_path):
    content = raw_safetensors({"x": {"dtype": "OBJ", "shape": [1], "data_offsets": [0, 1]}}, b"\0")
    with pytest.raises(InvalidSafetensors, match="tensor 'x': unknown dtype 'OBJ'"):
        _check(tmp_path, content)


def test_no_tensors(tmp_path):
    with pytest.raises(InvalidSafetensors, match="no tensors"):
        _check(tmp_path, raw_safetensors({"__metadata__": {"a": "b"}}))


def test_metadata_must_be_strings(tmp_path):
    content = raw_safetensors(
        {"__metadata__": {"a": 1}, "x": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}, b"\0"
    )
    with pytest.raises(InvalidSafetensors, match="__metadata__"):
        _check(tmp_path, content)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_pickle_under_a_safetensors_name_is_415(tmp_path, protocol):
    content = pickle.dumps({"w": [1.0, 2.0]}, protocol=protocol)
    with pytest.raises(PickleNotAccepted) as exc:
        _check(tmp_path, content)
    assert exc.value.status == 415 and exc.value.code == "pickle_not_accepted"


def test_torch_zip_archive_under_a_safetensors_name_is_415(tmp_path):
    path = tmp_path / "archive.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"w": 1}))
    with pytest.raises(PickleNotAccepted):
        _check(tmp_path, path.read_bytes())


def test_check_never_unpickles(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: calls.append(a))
    monkeypatch.setattr(pickle, "load", lambda *a, **k: calls.append(a))
    with pytest.raises(PickleNotAccepted):
        _check(tmp_path, pickle.dumps([1, 2], protocol=4))
    assert calls == []


def test_only_the_header_is_read(tmp_path, monkeypatch):
    """A huge data section is never read: the check opens the file and reads 8 + N bytes."""
    header = json.dumps({"x": {"dtype": "U8", "shape": [1_000_000], "data_offsets": [0, 1_000_000]}}).encode()
    path = _write(tmp_path, raw_safetensors(header, b"\0" * 1_000_000))
    reads = []
    real_open = open

    def spy_open(file, mode="r", *args, **kwargs):
        fh = real_open(file, mode, *args, **kwargs)
        real_read = fh.read

        class Spy:
            def __enter__(self):
                return self

            def __exit__(self, *exc):
                fh.close()

            def read(self, n=-1):
                reads.append(n)
                return real_read(n)

        return Spy()

    monkeypatch.setattr("builtins.open", spy_open)
    check_safetensors(path, "adapter.safetensors")
    assert all(n is not None and 0 <= n <= len(header) for n in reads)


_DTYPES = {"F32": np.float32, "F16": np.float16, "I64": np.int64, "U8": np.uint8, "F64": np.float64}


@hsettings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300), st.integers(min_value=0, max_value=400))
def test_arbitrary_bytes_only_ever_raise_typed_errors(tmp_path, blob, length):
    """Whatever the bytes, the check answers accepted or a typed 400/415 - never another exception."""
    for content in (blob, length.to_bytes(8, "little") + blob):
        try:
            _check(tmp_path, content)
        except (InvalidSafetensors, PickleNotAccepted) as exc:
            assert exc.status in (400, 415)


@hsettings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(
    st.text(alphabet="abcdefghij._", min_size=1, max_size=12),
    st.tuples(st.sampled_from(sorted(_DTYPES)), st.lists(st.integers(0, 4), max_size=3)),
    min_size=1, max_size=6,
))
def test_files_written_by_the_library_are_accepted(tmp_path, spec):
    tensors = {name: np.zeros(shape, dtype=_DTYPES[dtype]) for name, (dtype, shape) in spec.items()}
    checked = _check(tmp_path, save_safetensors(tensors))
    assert {name: (info.dtype, list(info.shape)) for name, info in checked.items()} == {
        name: (dtype, shape) for name, (dtype, shape) in spec.items()
    }
