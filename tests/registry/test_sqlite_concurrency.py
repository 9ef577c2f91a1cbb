"""Issue 7 row 8: concurrent uploads on the embedded SQLite database never answer 503.

The race runs in a subprocess on the settings the embedded mode really uses (hubsite.settings.base
with a SQLite DATABASE_URL): immediate transactions and a busy timeout.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
ROUNDS = 6


def _run_race(tmp_path, **env) -> dict:
    environment = {
        **os.environ, "DJANGO_SETTINGS_MODULE": "hubsite.settings.base", "HUB_VAR_DIR": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'hub.sqlite3'}", "REDIS_URL": "", "CELERY_BROKER_URL": "memory://",
        "HUB_THROTTLE_UPLOAD": "100000/min", "HUB_ALLOWED_HOSTS": "testserver", **env,
    }
    done = subprocess.run(
        [sys.executable, "-m", "tests.registry.sqlite_race", str(ROUNDS)], cwd=ROOT, env=environment,
        capture_output=True, text=True, timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_embedded_sqlite_settings_use_immediate_transactions():
    code = (
        "import django; django.setup(); from django.conf import settings; "
        "print(settings.DATABASES['default']['OPTIONS'])"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "hubsite.settings.base", "DATABASE_URL": "sqlite:///x.db"},
    )
    assert "'transaction_mode': 'IMMEDIATE'" in out.stdout and "'timeout': 30" in out.stdout, out.stderr[-2000:]


def test_concurrent_uploads_on_sqlite_are_never_503(tmp_path):
    """Without immediate transactions this answered 503 database_unavailable in about 1 race of 3."""
    results = _run_race(tmp_path)
    assert results["identical"] == [[200, 201]] * ROUNDS
    assert results["two_versions"] == [[201, 201]] * ROUNDS
