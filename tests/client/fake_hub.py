"""A tiny stand-in for the hub's resolve, file, upload, version and token endpoints, over real HTTP on 127.0.0.1."""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlparse


class FakeHub:
    def __init__(self):
        self.files: dict[str, bytes] = {}          # sha256 -> content
        self.resolutions: dict[str, dict] = {}     # identifier -> resolution or error body
        self.corrupt: set[str] = set()             # sha256s served with a flipped byte
        self.truncate: set[str] = set()            # sha256s served short
        self.delay_per_chunk = 0.0
        self.hits: list[str] = []
        self.uploads: list[dict] = []              # each: {"fields", "files", "headers"}
        self.statuses: list = []                   # what GET .../versions/<v> answers, in turn (the last repeats)
        self.tokens: set[str] = set()              # accepted Bearer tokens (empty: anyone may upload)
        self.fail_next: dict[str, list] = {}       # path prefix -> [(status, body), ...] answered first
        self.direct = False                        # resolve?direct=1 adds direct_url (/objects/<sha>) to files
        self.objects_status = 200                  # what /objects/<sha> answers (403: an expired URL)
        self.object_headers: list[dict] = []       # the headers of each /objects/ request
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def start(self) -> "FakeHub":
        self.thread.start()
        return self

    def stop(self):
        self.server.shutdown()
        self.server.server_close()

    def add_version(self, identifier: str, files: dict[str, bytes], **meta) -> dict:
        entries = []
        for name, content in sorted(files.items()):
            sha = hashlib.sha256(content).hexdigest()
            self.files[sha] = content
            entries.append({"name": name, "size": len(content), "sha256": sha, "url": f"/files/{sha}"})
        digest = hashlib.sha256("".join(f"{e['name']}:{e['sha256']}\n" for e in entries).encode()).hexdigest()
        resolution = {"identifier": identifier, "model_name": "tiny-bert", "model_type": "bert", "version": "1",
                      "digest": digest, "files": entries, "status": "valid", **meta}
        self.resolutions[identifier] = resolution
        return resolution

    def _handler(self):
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _json(self, status, body):
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def _forced(self, path):
                for prefix, answers in hub.fail_next.items():
                    if path.startswith(prefix) and answers:
                        status, body = answers.pop(0)
                        self._json(status, body)
                        return True
                return False

            def _authorised(self):
                token = self.headers.get("Authorization", "").removeprefix("Bearer ")
                return not hub.tokens or token in hub.tokens

            def do_POST(self):
                parsed = urlparse(self.path)
                hub.hits.append(parsed.path)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self._forced(parsed.path):
                    return None
                if parsed.path != "/api/v1/adapters/upload":
                    return self._json(404, {"code": "not_found", "detail": "no route"})
                if not self._authorised():
                    return self._json(401, {"code": "not_authenticated", "detail": "a token is required"})
                fields, files = parse_multipart(self.headers.get("Content-Type", ""), body)
                hub.uploads.append({"fields": fields, "files": files, "headers": dict(self.headers)})
                version = fields.get("version", "")
                return self._json(201, {
                    "url": f"{hub.url}/api/v1/adapters/7/versions/{version}", "identifier": fields.get("identifier"),
                    "model_name": fields.get("model_name"), "version": version, "status": "pending", "created": True,
                    "files": [{"name": n, "size": len(c), "sha256": hashlib.sha256(c).hexdigest()}
                              for n, c in sorted(files.items())],
                })

            def do_GET(self):
                parsed = urlparse(self.path)
                hub.hits.append(parsed.path)
                if self._forced(parsed.path):
                    return None
                if parsed.path.startswith("/api/v1/adapters/7/versions/"):
                    status = hub.statuses.pop(0) if len(hub.statuses) > 1 else (hub.statuses or ["pending"])[0]
                    record = status if isinstance(status, dict) else {"status": status}
                    return self._json(200, {"version": parsed.path.rsplit("/", 1)[1], "validation_report": None,
                                            **record})
                if parsed.path == "/api/v1/tokens":
                    if not self._authorised() or not self.headers.get("Authorization"):
                        return self._json(401, {"code": "not_authenticated", "detail": "bad token"})
                    return self._json(200, {"count": 1, "results": []})
                if parsed.path == "/api/v1/resolve":
                    query = parse_qs(parsed.query)
                    ident = query.get("id", [""])[0]
                    body = hub.resolutions.get(ident)
                    wanted = query.get("model_name", [None])[0]
                    if body is not None and wanted and "code" not in body and body.get("model_name") != wanted:
                        body = None  # the backbone filter excludes it, as on the real hub
                    if body is None:
                        return self._json(404, {"code": "adapter_not_found", "detail": f"no adapter {ident}"})
                    if "code" in body:
                        return self._json(body.pop("_status", 400), body)
                    if hub.direct and query.get("direct") == ["1"]:
                        body = {**body, "files": [{**f, "direct_url": f"{hub.url}/objects/{f['sha256']}"}
                                                  for f in body["files"]]}
                    return self._json(200, body)
                if parsed.path.startswith("/objects/"):
                    hub.object_headers.append(dict(self.headers))
                    if hub.objects_status != 200:
                        return self._json(hub.objects_status, {"code": "AccessDenied", "detail": "expired"})
                if parsed.path.startswith(("/files/", "/objects/")):
                    sha = parsed.path.rsplit("/", 1)[1]
                    content = hub.files.get(sha)
                    if content is None:
                        return self._json(404, {"code": "not_found", "detail": "no file"})
                    if sha in hub.corrupt:
                        content = bytes([content[0] ^ 0xFF]) + content[1:]
                    if sha in hub.truncate:
                        content = content[: len(content) // 2]
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(content)))
                    self.end_headers()
                    for i in range(0, len(content), 4096):
                        self.wfile.write(content[i:i + 4096])
                        if hub.delay_per_chunk:
                            time.sleep(hub.delay_per_chunk)
                    return None
                return self._json(404, {"code": "not_found", "detail": "no route"})

        return Handler


def parse_multipart(content_type: str, body: bytes) -> tuple[dict, dict]:
    """(form fields, files by file name) of a multipart/form-data body."""
    boundary = content_type.split("boundary=", 1)[1].strip('"').encode()
    fields, files = {}, {}
    for part in body.split(b"--" + boundary)[1:]:
        if part.startswith(b"--"):
            break
        head, _, content = part[2:].partition(b"\r\n\r\n")
        content = content[:-2] if content.endswith(b"\r\n") else content
        disposition = head.decode().split("\r\n")[0]
        params = dict(p.strip().split("=", 1) for p in disposition.split(";")[1:])
        name = params["name"].strip('"')
        if "filename" in params:
            files[params["filename"].strip('"')] = content
        else:
            fields[name] = content.decode()
    return fields, files
