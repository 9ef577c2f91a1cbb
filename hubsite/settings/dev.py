"""Embedded defaults: SQLite, filesystem storage, no Redis needed. For a laptop, never production."""

from .base import *  # noqa: F401,F403
from .env import env_bool

DEBUG = env_bool("HUB_DEBUG", True)
ALLOWED_HOSTS = ["*"]
# Password-reset mails are printed on the console in the embedded mode.
EMAIL_BACKEND = "django.core.mail.backends.console.EmailBackend"
