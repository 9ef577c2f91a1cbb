"""The download benchmark's rate-limited link (benchmarks/download/link.py): it forwards every byte
both ways unchanged, and no transfer through it beats its bandwidth."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import requests

from benchmarks.download import link

ROOT = Path(__file__).resolve().parents[2]
BODY = os.urandom(1_500_000)


class _Echo(BaseHTTPRequestHandler):
    """GET: BODY; POST: the sha256 of the request body."""

    def do_GET(self):  # noqa: N802 - http.server's name
        self.send_response(200)
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()
        self.wfile.write(BODY)

    def do_POST(self):  # noqa: N802
        data = self.rfile.read(int(self.headers["Content-Length"]))
        digest = hashlib.sha256(data).hexdigest().encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(digest)))
        self.end_headers()
        self.wfile.write(digest)

    def log_message(self, *args):
        pass


@pytest.fixture
def origin():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_link_forwards_both_ways_intact_and_never_faster_than_its_rate(origin):
    mbps = 40.0  # 5 MB/s: 1.5 MB takes at least 0.3 s minus one burst
    proc, url = link.start(origin, mbps)
    try:
        started = time.perf_counter()
        got = requests.get(url, timeout=30)
        seconds = time.perf_counter() - started
        assert got.status_code == 200 and got.content == BODY
        floor = (len(BODY) - link.BURST) / (mbps * 1e6 / 8)
        assert seconds >= floor, (seconds, floor)

        sent = os.urandom(700_000)
        started = time.perf_counter()
        answer = requests.post(url, data=sent, timeout=30)
        seconds = time.perf_counter() - started
        assert answer.text == hashlib.sha256(sent).hexdigest()  # the upstream direction is whole too
        assert seconds >= (len(sent) - link.BURST) / (mbps * 1e6 / 8)
    finally:
        link.stop(proc)
    assert proc.poll() is not None


def test_two_connections_share_one_link(origin):
    """The bucket is per link, not per socket: two parallel GETs together take twice as long."""
    mbps = 40.0
    proc, url = link.start(origin, mbps)
    try:
        results = []
        threads = [threading.Thread(target=lambda: results.append(requests.get(url, timeout=30).content))
                   for _ in range(2)]
        started = time.perf_counter()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - started
        assert results == [BODY, BODY]
        assert seconds >= (2 * len(BODY) - 2 * link.BURST) / (mbps * 1e6 / 8), seconds
    finally:
        link.stop(proc)


@pytest.mark.parametrize("argv", [["--listen", "1", "--target", "nohost", "--mbps", "5"],
                                  ["--listen", "1", "--target", "127.0.0.1:80", "--mbps", "0"]])
def test_bad_arguments_are_usage_errors(argv):
    proc = subprocess.run([sys.executable, "-m", "benchmarks.download.link", *argv], cwd=ROOT,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2 and "--target host:port and a positive --mbps" in proc.stderr


def test_a_dead_origin_closes_the_client_connection():
    port = link.free_port()  # nothing listens there
    proc, url = link.start(f"http://127.0.0.1:{port}", 10.0)
    try:
        with pytest.raises(requests.ConnectionError):
            requests.get(url, timeout=10)
    finally:
        link.stop(proc)


def test_bucket_refuses_a_non_positive_rate():
    with pytest.raises(ValueError, match="positive"):
        link.Bucket(0)


def test_stopping_with_a_connection_open_is_quiet():
    """SIGTERM (what the benchmark sends at its end) closes open connections without tracebacks."""
    import socket

    origin = socket.socket()
    origin.bind(("127.0.0.1", 0))
    origin.listen()
    port = link.free_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.download.link", "--listen", str(port), "--target",
                             f"127.0.0.1:{origin.getsockname()[1]}", "--mbps", "10"], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 15
        while True:
            try:
                client = socket.create_connection(("127.0.0.1", port), timeout=1)
                break
            except OSError:
                assert time.monotonic() < deadline and proc.poll() is None, "the link did not start"
                time.sleep(0.1)
        client.sendall(b"GET / HTTP/1.1\r\n\r\n")
        upstream, _ = origin.accept()
        assert upstream.recv(100).startswith(b"GET / ")  # the connection is open through the link
        proc.terminate()
        assert proc.wait(timeout=10) == 0
        assert proc.stderr.read() == b""
        client.close()
        upstream.close()
    finally:
        if proc.poll() is None:
            proc.kill()
        origin.close()
