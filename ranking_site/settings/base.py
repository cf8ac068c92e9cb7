"""Settings shared by every environment. Values come from core.env."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path
from typing import Any

import django_stubs_ext
from corsheaders.defaults import default_headers as default_cors_headers
from django.core.exceptions import ImproperlyConfigured

from core.env import env_bool, env_db, env_float, env_int, env_list, env_str

django_stubs_ext.monkeypatch()  # lets admin.ModelAdmin[Model] etc. be subscripted at runtime

BASE_DIR = Path(__file__).resolve().parent.parent.parent

SECRET_KEY = env_str("SECRET_KEY", "dev-only-insecure-secret-key-change-me-0123456789abcdef")
DEBUG = env_bool("DEBUG", True)
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", ["localhost", "127.0.0.1", "[::1]", "testserver"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    # Needed for the expression index of videos (OpClass inside an index is wired up by this app).
    "django.contrib.postgres",
    "corsheaders",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_object_actions",
    "videos",
    "events",
    "scoring",
    "rankings",
    "web",
    "demo",
]

MIDDLEWARE = [
    # First: the request id must be set before anything logs, and the timing must cover everything.
    "core.middleware.RequestContextMiddleware",
    # Before any middleware that can answer on its own, so those answers carry CORS headers too.
    "corsheaders.middleware.CorsMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # Static files (admin, API docs, live page) come from the app itself: no CDN, no extra server.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "ranking_site.urls"
WSGI_APPLICATION = "ranking_site.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
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

DATABASES = {"default": env_db("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/ranking")}
DATABASES["default"]["CONN_MAX_AGE"] = env_int("DB_CONN_MAX_AGE", 60, minimum=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True

# The projection (rankings): one node, or any node of a Redis Cluster with REDIS_CLUSTER on.
REDIS_URL = env_str("REDIS_URL", "redis://127.0.0.1:6379/0")
REDIS_CLUSTER = env_bool("REDIS_CLUSTER", False)
# The Django cache and the cross-process metrics need no sharding and use commands a cluster
# would refuse across slots, so they keep a plain node of their own (the projection's when it is one).
CACHE_REDIS_URL = env_str("CACHE_REDIS_URL", "" if REDIS_CLUSTER else REDIS_URL)
if not CACHE_REDIS_URL:
    raise ImproperlyConfigured("CACHE_REDIS_URL: set it to a plain (non-cluster) Redis URL when REDIS_CLUSTER is on")
METRICS_REDIS_URL = CACHE_REDIS_URL
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": CACHE_REDIS_URL,
        "KEY_PREFIX": "cache",
        "OPTIONS": {"SOCKET_CONNECT_TIMEOUT": 2, "SOCKET_TIMEOUT": 2},
    }
}

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
STATIC_ROOT = BASE_DIR / "staticfiles"
# Local runs serve static files straight from the apps (no collectstatic step); production
# serves the collected, compressed copies baked into the image.
WHITENOISE_USE_FINDERS = True
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_REQUEST_BYTES", 2 * 1024 * 1024, minimum=1024)

REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_AUTHENTICATION_CLASSES": [],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.AllowAny"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.LimitOffsetPagination",
    "PAGE_SIZE": 20,
    "EXCEPTION_HANDLER": "core.api.errors.exception_handler",
    "DEFAULT_THROTTLE_RATES": {
        "ingest_key": env_str("THROTTLE_INGEST_PER_KEY", "6000/min"),
        "ingest_ip": env_str("THROTTLE_INGEST_PER_IP", "12000/min"),
    },
    "UNAUTHENTICATED_USER": None,
    # Behind N reverse proxies the per-IP throttle reads the client from X-Forwarded-For.
    "NUM_PROXIES": env_int("NUM_PROXIES", 0, minimum=0) if env_str("NUM_PROXIES", "") else None,
}

# Admin buttons (django-object-actions) change state, so they are forms that POST.
DJANGO_OBJECT_ACTIONS_DEFAULT_HTTP_METHOD = "POST"

SPECTACULAR_SETTINGS = {
    "TITLE": "Realtime Video Ranking API",
    "DESCRIPTION": (
        "Engagement events in, live video rankings out.\n\n"
        "**Authentication**: `POST /api/v1/events/` and `/api/v1/subscriptions/` need an API key, sent as "
        "`Authorization: Api-Key <key>` or `X-API-Key: <key>`; reads are public.\n\n"
        '**Errors** share one shape, `{"error": {"code", "message", "details"}}`; `code` is stable, `message` is '
        "for people, `details` names the bad fields (by item index, then field, for a batch of events).\n\n"
        "**Retries**: 429 and 503 carry `Retry-After` (seconds). After a 503 `kafka_unavailable`, resend the same "
        "`event_id`s: an id is counted once however often it is sent.\n\n"
        "**Tracing**: every response carries `X-Request-ID` (the caller's when it is a plain token, else a new "
        "UUID); it is logged and travels with the events to the workers."
    ),
    "TAGS": [
        {"name": "events", "description": "Ingestion of engagement events (API key required)."},
        {"name": "rankings", "description": "Live rankings per window, globally and per category."},
        {"name": "activity", "description": "Hourly score series of videos."},
        {
            "name": "webhooks",
            "description": "Subscriptions to rank changes, delivered as signed POSTs to your URL (API key required).",
        },
        {"name": "catalogue", "description": "Published videos, categories and event types."},
        {"name": "operations", "description": "Liveness, readiness and Prometheus metrics (outside /api/)."},
    ],
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "core.api.schema.schema_request_bodies_required",
    ],
}

# --- Kafka ---------------------------------------------------------------
KAFKA_BOOTSTRAP_SERVERS = env_list("KAFKA_BOOTSTRAP_SERVERS", ["127.0.0.1:9092"])
KAFKA_TOPIC = env_str("KAFKA_TOPIC", "video-events")
KAFKA_TOPIC_PARTITIONS = env_int("KAFKA_TOPIC_PARTITIONS", 6, minimum=1)
KAFKA_CONSUMER_GROUP = env_str("KAFKA_CONSUMER_GROUP", "ranking-bridge")
# Tansu holds a group join for half the session timeout; keep it short locally.
KAFKA_SESSION_TIMEOUT_MS = env_int("KAFKA_SESSION_TIMEOUT_MS", 10_000, minimum=1000)
KAFKA_PRODUCE_TIMEOUT_S = env_float("KAFKA_PRODUCE_TIMEOUT_S", 5.0, minimum=0.1)

# --- Celery --------------------------------------------------------------
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL", "redis://127.0.0.1:6379/1")
CELERY_TASK_IGNORE_RESULT = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT_S", 300, minimum=10)}
CELERY_TASK_ALWAYS_EAGER = False
# Three queues, so that a rebuild or a slow roll-over never delays the event path: "batches"
# (the default) for batch_process, "maintenance" for everything beat and the admin queue, and
# "webhooks" for the webhook evaluator and deliveries, which wait on other people's servers and
# must not wait behind a rebuild (a rule reaches its receiver within 5 s).
# make run and docker compose run a worker for each (docker compose: worker, worker-maintenance,
# worker-webhooks).
CELERY_TASK_DEFAULT_QUEUE = "batches"
CELERY_TASK_ROUTES = {
    **{
        name: {"queue": "maintenance"}
        for name in (
            "scoring.tasks.batches_repair",
            "scoring.tasks.rankings_watchdog",
            "scoring.tasks.rankings_rebuild",
            "scoring.tasks.window_rollover",
            "scoring.tasks.counters_fold",
            "scoring.tasks.trending_rebase",
            "scoring.tasks.partitions_maintain",
            "rankings.tasks.snapshot_take",
        )
    },
    **{
        name: {"queue": "webhooks"}
        for name in (
            "rankings.tasks.webhooks_evaluate",
            "rankings.tasks.webhook_deliver",
            "rankings.tasks.webhook_deliveries_requeue",
        )
    },
}
# Soft time limit of a rebuild (the hard one follows shortly after): it grows with the catalogue.
RANKING_REBUILD_TIME_LIMIT_S = env_int("RANKING_REBUILD_TIME_LIMIT_S", 900, minimum=60)
# Keep a worker's database connection across tasks (Celery's Django fixup closes it after
# every task by default); ranking_site/celery.py retires a broken or CONN_MAX_AGE-old one
# after each task, as Django does after each request.
CELERY_DB_REUSE_MAX = env_int("CELERY_DB_REUSE_MAX", 1000, minimum=0)

# A batch whose task gave up this many times (transient errors outlasting every retry)
# is left to an operator instead of being re-queued again (docs/exactly-once.md).
SCORING_BATCH_MAX_FAILURES = env_int("SCORING_BATCH_MAX_FAILURES", 3, minimum=1)

# The sweeper re-queues an unprocessed batch only when no batch task waits in the broker
# and its task was queued longer ago than this: longer than a live task holds a batch
# without its row lock (retries wait at most ~31 s in all). See docs/exactly-once.md.
SCORING_REQUEUE_LEASE_S = env_int("SCORING_REQUEUE_LEASE_S", 60, minimum=1)

# --- Rankings ------------------------------------------------------------
RANKING_TRENDING_HALF_LIFE_S = env_int("RANKING_TRENDING_HALF_LIFE_S", 6 * 3600, minimum=60)
RANKING_SNAPSHOT_INTERVAL_S = env_int("RANKING_SNAPSHOT_INTERVAL_S", 300, minimum=5)
RANKING_SNAPSHOT_DEPTH = env_int("RANKING_SNAPSHOT_DEPTH", 100, minimum=10)
RANKING_MAX_FUTURE_S = 300
RANKING_MAX_AGE_S = 7 * 24 * 3600

LOG_LEVEL = env_str("LOG_LEVEL", "INFO")
# json: one object per line with the request id (docs/observability.md); plain: for a terminal.
LOG_FORMAT = env_str("LOG_FORMAT", "json")
if LOG_FORMAT not in ("json", "plain"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r} must be json or plain")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {"()": "core.logging.JsonFormatter"},
        "plain": {"()": "core.logging.PlainFormatter"},
    },
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": LOG_FORMAT}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {"kafka": {"level": "WARNING"}},
}
# Celery would otherwise replace the root handler with its own plain format in the worker.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# When set, /metrics requires "Authorization: Bearer <token>".
METRICS_TOKEN = env_str("METRICS_TOKEN", "")

# --- CORS: browser clients on these origins may call /api/ (nothing else) ----------------
CORS_ALLOWED_ORIGINS = env_list("CORS_ALLOWED_ORIGINS", [])
CORS_URLS_REGEX = r"^/api/.*$"
CORS_ALLOW_HEADERS = (*default_cors_headers, "x-api-key", "x-request-id")
CORS_EXPOSE_HEADERS = ["Retry-After", "X-Request-ID"]

RANKING_TRENDING_REBASE_S = env_int("RANKING_TRENDING_REBASE_S", 24 * 3600, minimum=3600)
RANKING_SNAPSHOT_RETENTION = timedelta(days=env_int("RANKING_SNAPSHOT_RETENTION_DAYS", 7, minimum=1))


def _periodic(task: str, every_s: float) -> dict[str, Any]:
    """A beat entry whose message expires before the next one is sent: while workers are
    down beat keeps sending, and a worker coming back discards the stale messages instead
    of running a sweep for each of them."""
    return {"task": task, "schedule": every_s, "options": {"expires": 0.8 * every_s}}


# --- Webhooks on rank changes (docs/webhooks.md) ------------------------------------------
# Local runs and tests deliver to receivers on loopback; production refuses loopback, private
# and link-local targets (SSRF) unless this is turned on explicitly.
WEBHOOKS_ALLOW_PRIVATE_TARGETS = env_bool("WEBHOOKS_ALLOW_PRIVATE_TARGETS", True)
# Lists with subscriptions are read this often and compared with the previous reading.
WEBHOOKS_EVALUATE_INTERVAL_S = env_float("WEBHOOKS_EVALUATE_INTERVAL_S", 1.0, minimum=0.2)
WEBHOOKS_TIMEOUT_S = env_float("WEBHOOKS_TIMEOUT_S", 5.0, minimum=0.5)
# Retries: the wait doubles from the base up to the cap (kept under the broker's visibility
# timeout, so a retry waiting in a worker is never handed out twice), each wait between half
# and all of its value; no attempt starts more than WEBHOOKS_RETRY_FOR_S after the change.
WEBHOOKS_RETRY_BASE_S = env_float("WEBHOOKS_RETRY_BASE_S", 2.0, minimum=0.01)
WEBHOOKS_RETRY_MAX_DELAY_S = env_float("WEBHOOKS_RETRY_MAX_DELAY_S", 120.0, minimum=0.01)
WEBHOOKS_RETRY_FOR_S = env_int("WEBHOOKS_RETRY_FOR_S", 900, minimum=1)
WEBHOOKS_MAX_PER_KEY = env_int("WEBHOOKS_MAX_PER_KEY", 100, minimum=1)

CELERY_BEAT_SCHEDULE = {
    "batches-repair": _periodic("scoring.tasks.batches_repair", 5.0),
    "rankings-watchdog": _periodic("scoring.tasks.rankings_watchdog", 10.0),
    # Every 10 s: the hour window moves by whole minutes, at most 10 s after each minute starts.
    "rankings-rollover": _periodic("scoring.tasks.window_rollover", 10.0),
    # Each hour's minute rows move into the hourly rows once the whole hour has left the window.
    "counters-fold": _periodic("scoring.tasks.counters_fold", 60.0),
    "rankings-rebase": _periodic("scoring.tasks.trending_rebase", 3600.0),
    "rankings-snapshot": _periodic("rankings.tasks.snapshot_take", float(RANKING_SNAPSHOT_INTERVAL_S)),
    "partitions-maintain": _periodic("scoring.tasks.partitions_maintain", 3600.0),
    # Every second, on a queue and worker of its own: a rule must reach its receiver within 5 s.
    "webhooks-evaluate": _periodic("rankings.tasks.webhooks_evaluate", WEBHOOKS_EVALUATE_INTERVAL_S),
    "webhooks-requeue": _periodic("rankings.tasks.webhook_deliveries_requeue", 30.0),
}
