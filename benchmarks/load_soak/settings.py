"""Settings for the live hub of the load test and the soak: production engines, no TLS redirects.

The weights store and the upload temporary directory come from the environment
(HUB_WEIGHTS_DIR or HUB_S3_*, HUB_UPLOAD_TMP_DIR), set by benchmarks.load_soak.hub.
Validation tasks go to an in-process broker: nothing here runs them, nothing piles up in Redis.
"""

from hubsite.settings.base import *  # noqa: F401,F403
from hubsite.settings.base import REST_FRAMEWORK
from hubsite.settings.env import env_str

DEBUG = False
ALLOWED_HOSTS = ["127.0.0.1", "localhost"]
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/13")
CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
CELERY_BROKER_URL = "memory://"
REST_FRAMEWORK = {**REST_FRAMEWORK, "DEFAULT_THROTTLE_RATES": {
    "anon": "10000000/min", "user": "10000000/min", "upload": "10000000/min"}}
LOGGING = {"version": 1, "disable_existing_loggers": False, "root": {"level": "WARNING"}}
