"""Settings for the API load benchmark: production engines (Postgres, Redis) without TLS redirects.

HUB_CACHE_SECONDS defaults to an hour here (production: 30 s): the interleaved rounds leave each
scenario idle for ~15 s between its rounds, so with 30 s every round would start on expired
entries and the figure would depend on the round length. The uncached cost is measured apart
(the "cold" pass: every path once on an empty cache); --cache-seconds 30 gives production's TTL.
"""

from hubsite.settings.base import *  # noqa: F401,F403
from hubsite.settings.base import REST_FRAMEWORK
from hubsite.settings.env import env_int, env_str

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
ROOT_URLCONF = "benchmarks.api_load.urls"
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/14")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = REDIS_URL
HUB_CACHE_SECONDS = env_int("HUB_CACHE_SECONDS", 3600)
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
    "anon": "10000000/min", "user": "10000000/min", "upload": "10000000/min"}}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
