"""Fixtures shared by every test package. Must import without Django (the second virtualenv)."""

from __future__ import annotations

import os

import pytest

from .services import S3Server, service_missing

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 HTTP server (moto) on 127.0.0.1 for the whole session."""
    try:
        server = S3Server().start()
    except Exception as exc:  # noqa: BLE001 - any failure to start means the service is missing
        service_missing(f"moto S3 server: {exc}")
    yield server
    server.stop()


@pytest.fixture(scope="session")
def redis_url():
    """The real Redis on 127.0.0.1 (database 15, flushed before use)."""
    url = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
    try:
        import redis

        client = redis.Redis.from_url(url, socket_connect_timeout=2)
        client.ping()
        client.flushdb()
    except Exception as exc:  # noqa: BLE001
        service_missing(f"Redis at {url}: {exc}")
    return url
