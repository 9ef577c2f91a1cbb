"""Settings for the test suite: the production engines (Postgres, Redis) over real connections."""

import os

import dj_database_url

from .base import *  # noqa: F401,F403
from .base import VAR_DIR
from .env import env_str

DATABASES = {
    "default": dj_database_url.parse(
        env_str("TEST_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/adapterhub"), conn_max_age=0
    )
}
# A database per test run, so that concurrent runs on one machine never share one.
DATABASES["default"]["TEST"] = {"NAME": env_str("TEST_DB_NAME", f"test_adapterhub_{os.getpid()}")}
REDIS_URL = env_str("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_BROKER_URL = env_str("TEST_CELERY_BROKER_URL", REDIS_URL)
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    "weights": {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        # A worker subprocess of the end-to-end tests is pointed at the test process's store.
        "OPTIONS": {
            "location": env_str("TEST_WEIGHTS_DIR", os.path.join(VAR_DIR, "test-weights", str(os.getpid())))
        },
    },
}
HUB_UPLOAD_TMP_DIR = env_str("TEST_UPLOAD_TMP_DIR", os.path.join(VAR_DIR, "test-upload-tmp", str(os.getpid())))
FILE_UPLOAD_TEMP_DIR = HUB_UPLOAD_TMP_DIR
os.makedirs(HUB_UPLOAD_TMP_DIR, exist_ok=True)
REST_FRAMEWORK = {**REST_FRAMEWORK}  # noqa: F405
REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"] = {"anon": "100000/min", "user": "100000/min", "upload": "100000/min"}
HUB_CACHE_GENERATION_TTL = 0.0  # writes are visible to the very next read in tests
HUB_THROTTLE_SYNC_EVERY = 1  # exact rate-limit counting in tests
