"""Issue 7 rows 3, 4 and 9: bodies that did not arrive whole, and names the framework would rewrite.

A request cut short (before its Content-Length, without the closing boundary, or by a client
that went away) must never create anything and must leave nothing behind. File names with
HTML entities or ``filename*=`` encodings are refused, never rewritten.
"""

from __future__ import annotations

import io
import json
import socket
from urllib.parse import urlsplit

import pytest

from registry.models import Adapter

from .upload_helpers import (  # noqa: F401
    IDENTIFIER, UPLOAD_URL, adapter_files, assert_nothing_left, hub_dirs, maintainer_setup, multipart,
)

FORM = {"identifier": IDENTIFIER, "model_name": "bert-base-uncased"}


def _body(version_last: bool = False) -> tuple[bytes, str]:
    """A valid upload body; with ``version_last`` the last part is the form field ``version``."""
    body, content_type = multipart({**FORM, "version": "1"} if not version_last else FORM,
                                   list(adapter_files().items()))
    if version_last:
        boundary = content_type.split("boundary=")[1].encode()
        closing = b"--" + boundary + b"--\r\n"
        field = b"--" + boundary + b'\r\nContent-Disposition: form-data; name="version"\r\n\r\n2024.01.15\r\n'
        body = body[: -len(closing)] + field + closing
    return body, content_type


class _Vanishing(io.RawIOBase):
    """A wsgi.input whose client goes away after ``after`` bytes."""

    def __init__(self, data: bytes, after: int):
        self._data = io.BytesIO(data[:after])

    def readable(self):
        return True

    def read(self, size=-1):
        chunk = self._data.read(size)
        if not chunk:
            raise ConnectionResetError("connection reset by peer")
        return chunk


def _post(client, token, wsgi_input, content_type, content_length):
    return client.generic(
        "POST", UPLOAD_URL, b"x", content_type=content_type, HTTP_AUTHORIZATION=f"Bearer {token}",
        **{"wsgi.input": wsgi_input, "CONTENT_LENGTH": str(content_length)},
    )


@pytest.fixture
def token(hub_dirs):  # noqa: F811
    return maintainer_setup()[2]


@pytest.mark.django_db
def test_the_whole_body_is_accepted(client, hub_dirs, token):  # noqa: F811
    """The check does not refuse a complete body (the version is the last field here)."""
    body, content_type = _body(version_last=True)
    response = _post(client, token, io.BytesIO(body), content_type, len(body))
    assert response.status_code == 201, response.content
    assert response.json()["version"] == "2024.01.15"


@pytest.mark.django_db
@pytest.mark.parametrize("declared", ["full", "actual"], ids=["short_of_content_length", "no_closing_boundary"])
def test_body_cut_inside_the_last_field_creates_nothing(client, hub_dirs, token, declared):  # noqa: F811
    body, content_type = _body(version_last=True)
    cut = body[: body.index(b"2024.01.15") + 2]  # the version field reads "20"
    length = len(body) if declared == "full" else len(cut)
    response = _post(client, token, io.BytesIO(cut), content_type, length)
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "incomplete_upload"
    assert Adapter.objects.count() == 0
    assert_nothing_left(hub_dirs)


@pytest.mark.django_db
@pytest.mark.parametrize("where", [0.25, 0.6, 0.95])
def test_body_cut_inside_a_file_creates_nothing(client, hub_dirs, token, where):  # noqa: F811
    body, content_type = _body()
    cut = body[: int(len(body) * where)]
    response = _post(client, token, io.BytesIO(cut), content_type, len(body))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "incomplete_upload"
    assert_nothing_left(hub_dirs)


@pytest.mark.django_db
def test_client_gone_mid_file_creates_nothing(client, hub_dirs, token):  # noqa: F811
    body, content_type = _body()
    response = _post(client, token, _Vanishing(body, len(body) // 2), content_type, len(body))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "incomplete_upload"
    assert_nothing_left(hub_dirs)


def _raw_post(url: str, head: str, payload: bytes) -> tuple[int, dict]:
    """Send ``head`` + ``payload`` over a socket, half-close it, and read the answer."""
    parts = urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=20) as sock:
        sock.sendall(head.encode() + payload)
        sock.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    _, _, content = rest.partition(b"\r\n\r\n")
    return int(status_line.split()[1]), json.loads(content)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("cut_in", ["file", "last_field"])
def test_live_server_half_closed_socket_creates_nothing(live_server, hub_dirs, cut_in):  # noqa: F811
    _, _, raw_token = maintainer_setup()
    body, content_type = _body(version_last=cut_in == "last_field")
    cut = body[: body.index(b"2024.01.15") + 2] if cut_in == "last_field" else body[: len(body) // 2]
    head = (f"POST {UPLOAD_URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\nAuthorization: Bearer {raw_token}\r\nConnection: close\r\n\r\n")
    status, answer = _raw_post(live_server.url, head, cut)
    assert status == 400 and answer["code"] == "incomplete_upload"
    assert Adapter.objects.count() == 0
    assert_nothing_left(hub_dirs)


def _with_name_header(body: bytes, old: bytes, new: bytes) -> bytes:
    assert old in body
    return body.replace(old, new, 1)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "name",
    ["&#46;&#46;&#47;adapter.safetensors", "x&#47;adapter.safetensors", "adapter&#46;safetensors",
     "&#x2e;&#x2e;&#x2f;adapter.safetensors", "adapter.safetensors&#0;"],
)
def test_html_entity_names_are_refused_not_rewritten(client, hub_dirs, token, name):  # noqa: F811
    body, content_type = _body()
    body = _with_name_header(body, b'filename="adapter.safetensors"', f'filename="{name}"'.encode())
    response = _post(client, token, io.BytesIO(body), content_type, len(body))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_filename"
    assert_nothing_left(hub_dirs)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "param",
    [b"filename*=UTF-8''adapter.safetensors", b"filename*=UTF-8''..%2Fadapter.safetensors",
     b'filename="x.txt"; filename*=utf-8\'\'adapter.safetensors', b"FILENAME*=utf-8'en'adapter%2Esafetensors"],
)
def test_encoded_file_names_are_refused(client, hub_dirs, token, param):  # noqa: F811
    body, content_type = _body()
    body = _with_name_header(body, b'filename="adapter.safetensors"', param)
    response = _post(client, token, io.BytesIO(body), content_type, len(body))
    assert response.status_code == 400, response.content
    assert response.json()["code"] == "invalid_filename"
    assert_nothing_left(hub_dirs)


@pytest.mark.django_db
def test_filename_star_inside_file_content_is_not_a_header(client, hub_dirs, token):  # noqa: F811
    """Only part headers are looked at: a README that mentions filename*= uploads fine."""
    files = adapter_files(**{"README.md": b"Content-Disposition: form-data; filename*=UTF-8''x\r\n\r\n"})
    body, content_type = multipart({**FORM, "version": "1"}, list(files.items()))
    response = _post(client, token, io.BytesIO(body), content_type, len(body))
    assert response.status_code == 201, response.content
