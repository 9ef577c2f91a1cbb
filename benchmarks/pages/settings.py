"""Settings for the page benchmark: Postgres at $DATABASE_URL, in-process cache, no debug."""

from hubsite.settings.base import *  # noqa: F401,F403

DEBUG = False
ALLOWED_HOSTS = ["testserver", "127.0.0.1", "localhost"]
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_BROKER_URL = "memory://"
STORAGES = {  # noqa: F405
    **STORAGES, "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},  # noqa: F405
}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
# Short OLTP queries: the JIT compiler costs more than it saves (a production setting too).
DATABASES["default"].setdefault("OPTIONS", {})["options"] = "-c jit=off"  # noqa: F405
