"""HTTP to the hub on 127.0.0.1: uploads (whole, or cut short on purpose) and GETs."""

from __future__ import annotations

import http.client
import json
import socket
import time
from dataclasses import dataclass

from .payloads import multipart

UPLOAD_PATH = "/api/v1/adapters/upload"
NO_ANSWER = 0  # the server closed the connection without answering


@dataclass
class Answer:
    status: int
    code: str | None
    body: dict
    ms: float


def _answer(status: int, raw: bytes, started: float) -> Answer:
    try:
        body = json.loads(raw) if raw else {}
    except ValueError:
        body = {"raw": raw[:200].decode("latin-1")}
    code = body.get("code") if isinstance(body, dict) else None
    return Answer(status, code, body if isinstance(body, dict) else {}, (time.perf_counter() - started) * 1000)


def get(conn: http.client.HTTPConnection, path: str) -> Answer:
    started = time.perf_counter()
    conn.request("GET", path, headers={"Accept": "application/json"})
    response = conn.getresponse()
    return _answer(response.status, response.read(), started)


def upload(port: int, token: str, fields: dict, files: list[tuple[str, bytes]], file_field: str = "files",
           timeout: float = 60.0) -> Answer:
    """POST one whole multipart upload with the token; the answer (NO_ANSWER on a dropped connection)."""
    body, content_type = multipart(fields, files, file_field)
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    started = time.perf_counter()
    try:
        conn.request("POST", UPLOAD_PATH, body=body, headers={
            "Authorization": f"Bearer {token}", "Content-Type": content_type, "Accept": "application/json"})
        response = conn.getresponse()
        return _answer(response.status, response.read(), started)
    except (OSError, http.client.HTTPException):
        return Answer(NO_ANSWER, None, {}, (time.perf_counter() - started) * 1000)
    finally:
        conn.close()


def upload_cut(port: int, token: str, body: bytes, content_type: str, cut_at: int, timeout: float = 30.0) -> Answer:
    """Declare the whole body's Content-Length, send only ``body[:cut_at]``, then half-close the
    socket (a client killed mid-upload): the server sees the stream end early."""
    head = (f"POST {UPLOAD_PATH} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Bearer {token}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\nAccept: application/json\r\n"
            "Connection: close\r\n\r\n").encode()
    started = time.perf_counter()
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        try:
            sock.sendall(head + body[:cut_at])
            sock.shutdown(socket.SHUT_WR)
            raw = b""
            while chunk := sock.recv(65536):
                raw += chunk
        except OSError:
            raw = b""
    if not raw.startswith(b"HTTP/"):
        return Answer(NO_ANSWER, None, {}, (time.perf_counter() - started) * 1000)
    status = int(raw.split(b" ", 2)[1])
    payload = raw.split(b"\r\n\r\n", 1)[1] if b"\r\n\r\n" in raw else b""
    if b"transfer-encoding: chunked" in raw.split(b"\r\n\r\n", 1)[0].lower():
        payload = _dechunk(payload)
    return _answer(status, payload, started)


def _dechunk(data: bytes) -> bytes:
    out, rest = b"", data
    while rest:
        size_line, _, rest = rest.partition(b"\r\n")
        size = int(size_line.split(b";")[0] or b"0", 16)
        if size == 0:
            break
        out, rest = out + rest[:size], rest[size + 2:]
    return out
