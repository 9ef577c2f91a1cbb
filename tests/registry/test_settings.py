"""Production settings pass Django's deployment checks; they refuse to start without secrets."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def run_manage(*args, env_extra):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HUB_", "DATABASE_URL", "REDIS_URL"))}
    env.update({"DJANGO_SETTINGS_MODULE": "hubsite.settings.prod", **env_extra})
    return subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def prod_env(**extra):
    return {
        "HUB_SECRET_KEY": secrets.token_urlsafe(60),
        "DATABASE_URL": "postgres://postgres@127.0.0.1:5432/postgres",
        "REDIS_URL": "redis://127.0.0.1:6379/0",
        "HUB_S3_BUCKET": "adapters",
        "HUB_S3_ENDPOINT_URL": "http://127.0.0.1:9",
        **extra,
    }


def test_check_deploy_passes_with_production_settings():
    result = run_manage("check", "--deploy", "--fail-level", "WARNING", env_extra=prod_env())
    assert result.returncode == 0, result.stderr
    assert "no issues" in result.stdout


def test_production_refuses_to_start_without_a_secret_key():
    env = prod_env()
    del env["HUB_SECRET_KEY"]
    result = run_manage("check", env_extra=env)
    assert result.returncode != 0
    assert "HUB_SECRET_KEY" in result.stderr


def test_production_uses_s3_for_weights_when_configured():
    code = "from django.conf import settings; print(settings.STORAGES['weights']['BACKEND'])"
    result = run_manage("shell", "-c", code, env_extra=prod_env())
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "storages.backends.s3.S3Storage"
