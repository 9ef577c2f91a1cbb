"""Production: Postgres, Redis, S3. Every secret comes from the environment; nothing defaults."""

from .base import *  # noqa: F401,F403
from .env import env_bool, env_int, env_str

SECRET_KEY = env_str("HUB_SECRET_KEY", required=True)
DEBUG = False
env_str("DATABASE_URL", required=True)
env_str("REDIS_URL", required=True)

SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = env_bool("HUB_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$"]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_HSTS_SECONDS = env_int("HUB_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"
