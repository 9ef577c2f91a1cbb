"""A tiny stand-in for the hub's resolve and file endpoints, served over real HTTP on 127.0.0.1."""

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

            def do_GET(self):
                parsed = urlparse(self.path)
                hub.hits.append(parsed.path)
                if parsed.path == "/api/v1/resolve":
                    ident = parse_qs(parsed.query).get("id", [""])[0]
                    body = hub.resolutions.get(ident)
                    if body is None:
                        return self._json(404, {"code": "adapter_not_found", "detail": f"no adapter {ident}"})
                    if "code" in body:
                        return self._json(body.pop("_status", 400), body)
                    return self._json(200, body)
                if parsed.path.startswith("/files/"):
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
