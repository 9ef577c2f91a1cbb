"""Issue 7 rows 1 and 2: deeply nested JSON and damaged compressed archive members.

Each case checks the exact status and code and that nothing is left behind.
"""

from __future__ import annotations

import io
import json
import lzma
import zipfile
import zlib

import pytest

from adapters_client.rules import MAX_JSON_DEPTH
from registry.checks.archives import extract_archive
from registry.checks.configs import load_json_file
from registry.errors import InvalidArchive, InvalidConfig

from .test_upload_archive import _post_archive
from .upload_helpers import (  # noqa: F401
    adapter_config, adapter_files, assert_nothing_left, head_files, hub_dirs, maintainer_setup, post_upload,
    raw_safetensors,
)

pytestmark = pytest.mark.django_db

DEEP = 3000  # far past Python's default recursion limit of 1000


def _nested(depth: int, closed: bool = True) -> str:
    return "[" * depth + ("]" * depth if closed else "")


def _config_with(value: str) -> bytes:
    """adapter_config.json whose method config holds ``value`` (raw JSON text) under "leave_out"."""
    text = json.dumps(adapter_config())
    return text.replace('"leave_out": []', f'"leave_out": {value}', 1).encode()


def _head_config_with(value: str) -> bytes:
    text = head_files()["head_config.json"].decode()
    return text.replace('"label2id": {', f'"deep": {value}, "label2id": {{', 1).encode()


def _weights_with(value: str) -> bytes:
    header = '{"__metadata__": {"format": "pt"}, "deep": ' + value + "}"
    return raw_safetensors(header.encode())


@pytest.fixture
def token(hub_dirs):  # noqa: F811
    return maintainer_setup()[2]


@pytest.mark.parametrize("closed", [True, False], ids=["balanced", "unclosed"])
@pytest.mark.parametrize(
    "files, code, filename",
    [
        (lambda v: adapter_files(**{"adapter_config.json": _config_with(v)}), "invalid_config",
         "adapter_config.json"),
        (lambda v: adapter_files(**{**head_files(), "head_config.json": _head_config_with(v)}), "invalid_config",
         "head_config.json"),
        (lambda v: adapter_files(**{"adapter.safetensors": _weights_with(v)}), "invalid_safetensors",
         "adapter.safetensors"),
    ],
    ids=["adapter_config", "head_config", "safetensors_header"],
)
def test_deeply_nested_json_is_400_naming_the_file(client, hub_dirs, token,  # noqa: F811
                                                   files, code, filename, closed):
    response = post_upload(client, files(_nested(DEEP, closed)), token)
    assert response.status_code == 400, response.content
    body = response.json()
    assert body["code"] == code and body["filename"] == filename
    assert "levels deep" in body["detail"]
    assert_nothing_left(hub_dirs)


def test_the_depth_cap_is_exact(tmp_path):
    """A document nested exactly MAX_JSON_DEPTH levels parses; one level more is refused."""
    at_cap = tmp_path / "at.json"
    at_cap.write_text('{"a": ' + _nested(MAX_JSON_DEPTH - 1) + "}")
    assert load_json_file(str(at_cap), "head_config.json") == {"a": json.loads(_nested(MAX_JSON_DEPTH - 1))}
    over = tmp_path / "over.json"
    over.write_text('{"a": ' + _nested(MAX_JSON_DEPTH) + "}")
    with pytest.raises(InvalidConfig) as info:
        load_json_file(str(over), "head_config.json")
    assert info.value.code == "invalid_config" and f"{MAX_JSON_DEPTH} levels" in info.value.detail


def test_brackets_inside_strings_do_not_count(tmp_path):
    path = tmp_path / "s.json"
    path.write_text(json.dumps({"name": "[" * DEEP, "escaped": '\\"[[[' + "{" * DEEP}))
    assert load_json_file(str(path), "adapter_config.json")["name"] == "[" * DEEP


def _corrupt_zip(method: int) -> bytes:
    """A zip of a valid adapter whose first member's compressed bytes are damaged."""
    files = adapter_files()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=method) as zf:
        zf.writestr("adapter.safetensors", files["adapter.safetensors"] * 8)
        zf.writestr("adapter_config.json", files["adapter_config.json"])
    raw = bytearray(buffer.getvalue())
    info = zipfile.ZipFile(io.BytesIO(bytes(raw))).infolist()[0]
    start = info.header_offset + 30 + len(info.filename.encode())
    for i in range(start + 20, start + 60):
        raw[i] ^= 0x5A
    return bytes(raw)


METHODS = {
    "deflate": (zipfile.ZIP_DEFLATED, zlib.error),
    "bzip2": (zipfile.ZIP_BZIP2, OSError),
    "lzma": (zipfile.ZIP_LZMA, lzma.LZMAError),
}


@pytest.mark.parametrize("method", sorted(METHODS))
def test_the_damage_is_what_the_decompressor_raises(method):
    """The fixture really provokes the library errors the hub must map (not just a CRC error)."""
    compression, error = METHODS[method]
    damaged = _corrupt_zip(compression)
    with zipfile.ZipFile(io.BytesIO(damaged)) as zf, pytest.raises(error):
        zf.open(zf.infolist()[0]).read()


@pytest.mark.parametrize("method", sorted(METHODS))
def test_extract_maps_damaged_members_to_invalid_archive(method, tmp_path):
    path = tmp_path / "a.zip"
    path.write_bytes(_corrupt_zip(METHODS[method][0]))
    dest = tmp_path / "out"
    dest.mkdir()
    with pytest.raises(InvalidArchive) as info:
        extract_archive(str(path), "a.zip", str(dest))
    assert info.value.code == "invalid_archive" and info.value.status == 400


@pytest.mark.parametrize("method", sorted(METHODS))
def test_damaged_archive_upload_is_400_invalid_archive(client, hub_dirs, token, method):  # noqa: F811
    response = _post_archive(client, token, _corrupt_zip(METHODS[method][0]))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_archive"
    assert_nothing_left(hub_dirs)
