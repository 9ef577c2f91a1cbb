"""Settings of the throughput run's worker and of the process that queues its versions.

Everything specific comes from the environment, set by benchmarks.validation.throughput: the database
(DATABASE_URL), the weights store (HUB_WEIGHTS_DIR), the broker (CELERY_BROKER_URL, a Redis database of
its own) and the queue (BENCH_QUEUE). The backbones are the default allow-list (the packaged MiniLM).
"""

from hubsite.settings.base import *  # noqa: F401,F403
from hubsite.settings.env import env_str

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
CELERY_TASK_DEFAULT_QUEUE = env_str("BENCH_QUEUE", "validation-bench")
