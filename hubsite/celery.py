"""The Celery app. Workers: ``celery -A hubsite worker``; scheduler: ``celery -A hubsite beat``."""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings.dev")

app = Celery("hubsite")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks(["registry", "validator"])
