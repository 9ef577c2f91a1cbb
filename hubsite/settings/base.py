"""Settings shared by every environment. Everything deployment-specific comes from the environment."""

import os
from pathlib import Path

import dj_database_url

from .env import env_bool, env_int, env_list, env_str

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = Path(env_str("HUB_VAR_DIR", str(BASE_DIR / "var")))

SECRET_KEY = env_str("HUB_SECRET_KEY", "insecure-dev-key-change-me-" + "x" * 32)
DEBUG = env_bool("HUB_DEBUG", False)
ALLOWED_HOSTS = env_list("HUB_ALLOWED_HOSTS", ["127.0.0.1", "localhost"])
CSRF_TRUSTED_ORIGINS = env_list("HUB_CSRF_TRUSTED_ORIGINS")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django.contrib.postgres",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "registry",
    "validator",  # its management command (versionstatus); the web process never imports torch from it
]

MIDDLEWARE = [
    "registry.api.handlers.ApiJsonErrorsMiddleware",  # outermost: no HTML error page leaves /api/
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "hubsite.urls"
WSGI_APPLICATION = "hubsite.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "hubsite" / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

DATABASES = {
    "default": dj_database_url.parse(
        env_str("DATABASE_URL", f"sqlite:///{VAR_DIR / 'hub.sqlite3'}"),
        conn_max_age=env_int("HUB_DB_CONN_MAX_AGE", 60),
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded database: a write transaction takes the lock when it begins (no deadlocking
    # upgrade from a read lock) and waits for it up to the busy timeout instead of failing.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"transaction_mode": "IMMEDIATE", "timeout": env_int("HUB_SQLITE_TIMEOUT", 30)}
    )
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"
os.makedirs(STATIC_ROOT, exist_ok=True)  # whitenoise warns on every start when it is missing
STATICFILES_DIRS = [BASE_DIR / "hubsite" / "static"]

# --- Weights store: chosen by the alias "weights", never by class in code. -----------------
HUB_S3_BUCKET = env_str("HUB_S3_BUCKET")
WEIGHTS_ROOT = Path(env_str("HUB_WEIGHTS_DIR", str(VAR_DIR / "weights")))
if HUB_S3_BUCKET:
    _weights_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": HUB_S3_BUCKET,
            "endpoint_url": env_str("HUB_S3_ENDPOINT_URL"),
            "access_key": env_str("HUB_S3_ACCESS_KEY_ID"),
            "secret_key": env_str("HUB_S3_SECRET_ACCESS_KEY"),
            "region_name": env_str("HUB_S3_REGION", "us-east-1"),
            "custom_domain": env_str("HUB_S3_CUSTOM_DOMAIN"),
            "querystring_auth": True,
            "querystring_expire": env_int("HUB_S3_URL_EXPIRY", 300),
            "file_overwrite": True,
            "default_acl": None,
            "addressing_style": env_str("HUB_S3_ADDRESSING_STYLE", "path"),
            "signature_version": "s3v4",
        },
    }
else:
    _weights_storage = {
        "BACKEND": "django.core.files.storage.FileSystemStorage",
        "OPTIONS": {"location": str(WEIGHTS_ROOT), "base_url": None},
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
    "weights": _weights_storage,
}
MEDIA_ROOT = VAR_DIR / "media"

# --- Upload limits (RELIABILITY.md: uploaded files are hostile until checked). -------------
HUB_UPLOAD_TMP_DIR = env_str("HUB_UPLOAD_TMP_DIR", str(VAR_DIR / "upload-tmp"))
HUB_MAX_FILE_BYTES = env_int("HUB_MAX_FILE_BYTES", 512 * 1024 * 1024)
HUB_MAX_UPLOAD_BYTES = env_int("HUB_MAX_UPLOAD_BYTES", 1024 * 1024 * 1024)
HUB_MAX_FILES = env_int("HUB_MAX_FILES", 16)
HUB_MAX_SAFETENSORS_HEADER_BYTES = env_int("HUB_MAX_SAFETENSORS_HEADER_BYTES", 16 * 1024 * 1024)
HUB_MAX_JSON_BYTES = env_int("HUB_MAX_JSON_BYTES", 1024 * 1024)
# Free-text form fields of an upload (400 invalid_input past the cap); lists show a summary.
HUB_MAX_DESCRIPTION_CHARS = env_int("HUB_MAX_DESCRIPTION_CHARS", 10_000)
HUB_MAX_LICENSE_CHARS = 64  # the database column's size
HUB_SUMMARY_CHARS = env_int("HUB_SUMMARY_CHARS", 200)
FILE_UPLOAD_MAX_MEMORY_SIZE = 0  # every uploaded file streams to disk, never into memory whole
DATA_UPLOAD_MAX_MEMORY_SIZE = 2 * 1024 * 1024
FILE_UPLOAD_TEMP_DIR = HUB_UPLOAD_TMP_DIR
os.makedirs(HUB_UPLOAD_TMP_DIR, exist_ok=True)
HUB_DOWNLOAD_URL_EXPIRY = env_int("HUB_S3_URL_EXPIRY", 300)

# --- Cache: Redis when configured, else in-process memory. ----------------------------------
REDIS_URL = env_str("REDIS_URL")
if REDIS_URL:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}}
else:
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
HUB_CACHE_SECONDS = env_int("HUB_CACHE_SECONDS", 30)
# How often a process re-reads the cache generation (bumped by every write) on the anonymous fast path.
HUB_CACHE_GENERATION_TTL = float(env_str("HUB_CACHE_GENERATION_TTL", "1.0"))
# The anonymous fast path adds to the shared rate-limit counter once every N requests per process.
HUB_THROTTLE_SYNC_EVERY = env_int("HUB_THROTTLE_SYNC_EVERY", 10)
# ... and at most once per this many seconds per client (see registry/api/throttles.py).
HUB_THROTTLE_SYNC_INTERVAL = float(env_str("HUB_THROTTLE_SYNC_INTERVAL", "0.1"))

# --- Celery (RELIABILITY.md: late ack, reject on worker lost, prefetch 1, limits < visibility).
# Without Redis (the embedded mode) the broker is kombu's filesystem transport under var/broker and
# results are files under var/celery-results: a worker process beside the web server needs no service.
HUB_BROKER_DIR = env_str("HUB_BROKER_DIR", os.path.join(VAR_DIR, "broker"))
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", REDIS_URL or "filesystem://")
CELERY_RESULT_BACKEND = env_str(
    "CELERY_RESULT_BACKEND", REDIS_URL or "file://" + os.path.join(VAR_DIR, "celery-results"))
CELERY_RESULT_EXPIRES = 3600
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SOFT_TIME_LIMIT = env_int("HUB_VALIDATION_SOFT_TIME_LIMIT", 600)
CELERY_TASK_TIME_LIMIT = env_int("HUB_VALIDATION_TIME_LIMIT", 660)
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("HUB_BROKER_VISIBILITY_TIMEOUT", 900)}
if CELERY_BROKER_URL.startswith("filesystem://"):
    for _sub in ("queue", "processed", "control"):
        os.makedirs(os.path.join(HUB_BROKER_DIR, _sub), exist_ok=True)
    if CELERY_RESULT_BACKEND.startswith("file://"):
        os.makedirs(CELERY_RESULT_BACKEND[len("file://"):], exist_ok=True)
    CELERY_BROKER_TRANSPORT_OPTIONS.update({
        "data_folder_in": os.path.join(HUB_BROKER_DIR, "queue"),
        "data_folder_out": os.path.join(HUB_BROKER_DIR, "queue"),
        "processed_folder": os.path.join(HUB_BROKER_DIR, "processed"),
        "control_folder": os.path.join(HUB_BROKER_DIR, "control"),
        "store_processed": False,
    })
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = "validation"
CELERY_TIMEZONE = TIME_ZONE
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-versions": {"task": "registry.sweep_stale_versions", "schedule": 120.0},
    "sweep-orphan-objects": {"task": "registry.sweep_orphan_objects", "schedule": 3600.0},
}
HUB_VALIDATION_MAX_ATTEMPTS = env_int("HUB_VALIDATION_MAX_ATTEMPTS", 3)
# Platform faults (backbone unavailable, out of memory) are retried this often with exponential backoff.
HUB_VALIDATION_RETRIES = env_int("HUB_VALIDATION_RETRIES", 3)
HUB_VALIDATION_RETRY_BACKOFF = env_int("HUB_VALIDATION_RETRY_BACKOFF", 30)
# The backbone allow-list (a JSON file: model name -> entry, see docs/validator.md); unset: the packaged
# backbones. Backbone rows in the admin add to it.
HUB_VALIDATOR_BACKBONES = env_str("HUB_VALIDATOR_BACKBONES") or None
# A claimed score more than this above the verified one is marked on the version.
HUB_CLAIMED_SCORE_TOLERANCE = float(env_str("HUB_CLAIMED_SCORE_TOLERANCE", "0.05"))
HUB_STALE_AFTER_SECONDS = env_int("HUB_STALE_AFTER_SECONDS", 900)
HUB_ORPHAN_GRACE_SECONDS = env_int("HUB_ORPHAN_GRACE_SECONDS", 3600)
CELERY_BROKER_CONNECTION_TIMEOUT = env_int("HUB_BROKER_CONNECTION_TIMEOUT", 3)

# --- REST API ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "registry.api.auth.HubTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_PAGINATION_CLASS": "registry.api.pagination.HubPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "registry.api.errors.exception_handler",
    "DEFAULT_THROTTLE_CLASSES": [
        "registry.api.throttles.HubAnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env_str("HUB_THROTTLE_ANON", "600/min"),
        "user": env_str("HUB_THROTTLE_USER", "2400/min"),
        "upload": env_str("HUB_THROTTLE_UPLOAD", "60/hour"),
    },
    "UNAUTHENTICATED_USER": "django.contrib.auth.models.AnonymousUser",
    # How many reverse proxies in front of the hub append to X-Forwarded-For. 0 (the default): the
    # client address is the socket's, and X-Forwarded-For is ignored; 1 behind one proxy (nginx,
    # a load balancer) that the clients cannot bypass. Never more than really sit in front.
    "NUM_PROXIES": env_int("HUB_TRUSTED_PROXIES", 0),
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Adapter Hub API",
    "DESCRIPTION": "Find, resolve, download and upload adapters.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI served from our own static files (no CDN).
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "registry.api.schema.declare_common_errors",
    ],
}

LOGIN_URL = "/accounts/login/"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": env_str("HUB_LOG_LEVEL", "INFO")},
}

# --- Web pages ---------------------------------------------------------------------------------
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/"
DEFAULT_FROM_EMAIL = env_str("HUB_FROM_EMAIL", "hub@localhost")
