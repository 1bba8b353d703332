"""TeamChat settings.

Every setting that differs between machines is read here, once, from the
environment (or an optional `.env` file). The defaults are the zero-setup local
development configuration: SQLite and the in-memory channel layer.
"""

import os
import re
import secrets
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError

from chat.realtime.sendnow import RedisConnection, SentinelRedisConnection

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()
if (BASE_DIR / ".env").is_file():
    environ.Env.read_env(BASE_DIR / ".env", overwrite=False)

DEBUG = env.bool("DJANGO_DEBUG", default=False)


# The placeholder in .env.example: a copied file must not start a server.
_EXAMPLE_SECRET_KEY = "change-me-to-a-long-random-string"  # noqa: S105  (refused, not used)


def _secret_key() -> str:
    key = env.str("DJANGO_SECRET_KEY", default="")
    if key and not DEBUG and (key == _EXAMPLE_SECRET_KEY or len(key) < 50 or len(set(key)) < 5):
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is the example's placeholder or too weak: use at least 50 "
            "random characters, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'"
        )
    if key:
        return key
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it in the environment (or in .env); "
            "only a development server (DJANGO_DEBUG=true) may run without one."
        )
    # Development only: a random key kept in an untracked file, so sessions
    # survive restarts of the local server without a secret in the repository.
    path = BASE_DIR / ".secret_key"
    if not path.exists():
        path.write_text(secrets.token_urlsafe(50))
        path.chmod(0o600)
    return path.read_text().strip()


SECRET_KEY = _secret_key()

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# The address people open TeamChat at, for links made to be copied and sent
# (invite links). Empty: taken from the request that shows the link.
SITE_URL = env.str("SITE_URL", default="")

INSTALLED_APPS = [
    "daphne",
    "whitenoise.runserver_nostatic",
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "allauth",
    "allauth.account",
    "allauth.mfa",
    "django.contrib.postgres",
    "accounts",
    "chat",
    "integrations",
    # django-ninja: /api/schema/ and the /api/docs/ page (its template and Swagger UI files).
    "ninja",
]

MIDDLEWARE = [
    # First, so its headers (CSP) reach every response: pages, errors,
    # redirects, and the static files whitenoise answers without going further.
    "teamchat.security.SecurityHeadersMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside SessionMiddleware on purpose: its response phase runs after the
    # session has been saved, which is when open sockets may re-check theirs.
    "accounts.middleware.SocketSessionCheckMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # /api/ with `Authorization: Bearer`: the token's user instead of the session's.
    "integrations.auth.BearerTokenMiddleware",
    # Who and from where, for the audit log of whatever the request does.
    "integrations.audit.AuditContextMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "allauth.account.middleware.AccountMiddleware",
    "accounts.middleware.AccessGateMiddleware",
]

ROOT_URLCONF = "teamchat.urls"
# The JSON API answers a failed CSRF check in JSON, like its other errors.
CSRF_FAILURE_VIEW = "chat.api.csrf_failure"
ASGI_APPLICATION = "teamchat.asgi.application"

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

# --- Database -------------------------------------------------------------
DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}"),
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql":
    # Persistent connections leak under ASGI (each thread keeps its own);
    # psycopg's pool hands connections back after every use instead.
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    DATABASES["default"].setdefault("OPTIONS", {})["pool"] = {
        "min_size": env.int("DATABASE_POOL_MIN", default=2),
        "max_size": env.int("DATABASE_POOL_MAX", default=10),
        "timeout": env.float("DATABASE_POOL_TIMEOUT", default=10.0),
    }
else:
    # Tests that start real server processes need a test database those
    # processes can open too, so it lives in a file rather than in memory.
    DATABASES["default"].setdefault("OPTIONS", {})["timeout"] = 20
    DATABASES["default"]["TEST"] = {"NAME": str(BASE_DIR / "test-artifacts" / "test.sqlite3")}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Channel layer and cache ----------------------------------------------
REDIS_URL = env.str("REDIS_URL", default="")
FANOUT_CAPACITY = 100_000
CHANNEL_LAYER_PREFIX = env.str("CHANNEL_LAYER_PREFIX", default="teamchat")
# The test suite runs in parallel workers (pytest-xdist) on one Redis: each
# worker's groups, presence and rate limits get a prefix of their own (the
# server processes a test starts inherit both, already suffixed).
_test_worker = os.environ.get("PYTEST_XDIST_WORKER", "")
if _test_worker and not CHANNEL_LAYER_PREFIX.endswith(f"-{_test_worker}"):
    CHANNEL_LAYER_PREFIX = f"{CHANNEL_LAYER_PREFIX}-{_test_worker}"
# Redis behind Sentinel: the sentinels ("host:port,host:port") name the
# primary of `REDIS_SENTINEL_MASTER`, and every client follows a failover.
# REDIS_URL still gives the database number and password (its host is unused).
REDIS_SENTINELS = [
    (host, int(port))
    for host, _, port in (item.rpartition(":") for item in env.list("REDIS_SENTINELS", default=[]))
]
REDIS_SENTINEL_MASTER = env.str("REDIS_SENTINEL_MASTER", default="mymaster")
REDIS_SENTINEL_PASSWORD = env.str("REDIS_SENTINEL_PASSWORD", default="")
if REDIS_SENTINELS and not REDIS_URL:
    raise ImproperlyConfigured("REDIS_SENTINELS needs REDIS_URL too (its database and password).")
if REDIS_URL:
    _redis_host: dict = {
        # redis-py 8 raises instead of waiting once a pool is full, so the
        # cap must sit above the number of concurrent layer operations.
        "max_connections": env.int("REDIS_MAX_CONNECTIONS", default=2000),
        # redis-py reads with a 5 s timeout by default, the same as the
        # layer's blocking pop: a reply that comes at the last moment
        # would be abandoned mid-read, and the message in it lost.
        "socket_timeout": 30,
        # After a Redis restart (or a failover) each connection the pool kept
        # fails on first use: retry once on a new one rather than drop a broadcast.
        "retry_on_error": [RedisConnectionError],
        # Commands go straight to the socket with the GIL kept (a rediss://
        # or unix:// address keeps redis-py's own class: the URL decides).
        "connection_class": SentinelRedisConnection if REDIS_SENTINELS else RedisConnection,
    }
    if REDIS_SENTINELS:
        from redis.connection import parse_url as _parse_redis_url

        _redis_options = _parse_redis_url(REDIS_URL)
        _redis_host.update(
            sentinels=REDIS_SENTINELS,
            master_name=REDIS_SENTINEL_MASTER,
            db=_redis_options.get("db", 0),
            password=_redis_options.get("password"),
        )
        if REDIS_SENTINEL_PASSWORD:
            _redis_host["sentinel_kwargs"] = {"password": REDIS_SENTINEL_PASSWORD}
    else:
        _redis_host["address"] = REDIS_URL
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {
                "hosts": [_redis_host],
                "prefix": CHANNEL_LAYER_PREFIX,
                "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
                # Each process's fan-out channel (its only process-local channel
                # in use) carries every event for the process: it must never
                # fill up and drop silently.
                "channel_capacity": {"specific.*": FANOUT_CAPACITY},
                "expiry": 60,
            },
        }
    }
    CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": CHANNEL_LAYER_PREFIX,
        }
    }
    if REDIS_SENTINELS:
        from redis.sentinel import Sentinel, SentinelConnectionPool

        CACHES["default"]["OPTIONS"] = {
            "pool_class": SentinelConnectionPool,
            "service_name": REDIS_SENTINEL_MASTER,
            "sentinel_manager": Sentinel(
                REDIS_SENTINELS,
                sentinel_kwargs={"password": REDIS_SENTINEL_PASSWORD or None},
            ),
        }
else:
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels.layers.InMemoryChannelLayer",
            "CONFIG": {
                "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=1000),
                # This layer does not compile glob patterns itself.
                "channel_capacity": [(re.compile(r"specific\."), FANOUT_CAPACITY)],
            },
        }
    }
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}

# --- Accounts and sessions ------------------------------------------------
AUTH_USER_MODEL = "accounts.User"
SESSION_ENGINE = "accounts.session_store"
SESSION_COOKIE_AGE = env.int("SESSION_COOKIE_AGE", default=60 * 60 * 24 * 14)

# One backend: allauth's (sign in with username or email; Django's permissions
# come with it), which also takes the users socket handshakes read ahead.
AUTHENTICATION_BACKENDS = ["accounts.backends.AuthenticationBackend"]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

ACCOUNT_LOGIN_METHODS = {"username", "email"}
ACCOUNT_SIGNUP_FIELDS = ["username*", "email*", "password1*", "password2*"]
ACCOUNT_EMAIL_VERIFICATION = env.str("ACCOUNT_EMAIL_VERIFICATION", default="optional")
if ACCOUNT_EMAIL_VERIFICATION not in {"none", "optional", "mandatory"}:
    raise ImproperlyConfigured("ACCOUNT_EMAIL_VERIFICATION must be none, optional or mandatory.")
ACCOUNT_UNIQUE_EMAIL = True
ACCOUNT_ADAPTER = "accounts.adapters.AccountAdapter"
ACCOUNT_ALLOW_SIGNUP = env.bool("ACCOUNT_ALLOW_SIGNUP", default=True)
ACCOUNT_LOGOUT_ON_PASSWORD_CHANGE = False
ACCOUNT_FORMS = {"signup": "accounts.forms.SignupForm"}
# Login, sign-up and reset pages answer the same whether an account exists.
ACCOUNT_PREVENT_ENUMERATION = True
# Counted in the cache (Redis when REDIS_URL is set, so across processes).
# "ip" is the client address (see TRUSTED_PROXY_COUNT). For login_failed,
# "key" is the client address and the login name together
# (accounts.adapters): counted per account alone, anyone could lock an owner
# out with five wrong passwords. A refused request gets HTTP 429 (a refused
# login_failed, a form error).
ACCOUNT_RATE_LIMITS = {
    "login": "30/m/ip",
    "login_failed": "10/m/ip,5/5m/key",
    "signup": "20/m/ip,100/h/ip",
    "reset_password": "20/m/ip,5/h/key",
}
# A field people never see; a bot that fills it gets the usual "check your
# email" page and no account.
ACCOUNT_SIGNUP_FORM_HONEYPOT_FIELD = "website"
# Adding, removing or switching email addresses, and changing two-factor
# settings, ask for the password again unless it was given this recently.
ACCOUNT_REAUTHENTICATION_REQUIRED = True
ACCOUNT_REAUTHENTICATION_TIMEOUT = env.int("ACCOUNT_REAUTHENTICATION_TIMEOUT", default=300)
LOGIN_REDIRECT_URL = "/"
LOGIN_URL = "account_login"

# Optional two-factor (an authenticator app, with recovery codes); required
# for staff when the admin's SignupPolicy says so.
MFA_SUPPORTED_TYPES = ["totp", "recovery_codes"]
MFA_TOTP_ISSUER = env.str("MFA_TOTP_ISSUER", default="TeamChat")

# The client address for rate limits. Behind reverse proxies, the number of
# them that append to X-Forwarded-For (the right-most entries are theirs);
# 0 ignores the header, which a client could otherwise forge. Or, instead, a
# header a trusted proxy sets to the client address (e.g. X-Real-IP).
ALLAUTH_TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
ALLAUTH_TRUSTED_CLIENT_IP_HEADER = env.str("TRUSTED_CLIENT_IP_HEADER", default="") or None

# --- HTTPS, cookies and response headers ------------------------------------
# Production is HTTPS only; a development server (DJANGO_DEBUG=true) is not.
SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=not DEBUG)
SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=0 if DEBUG else 60 * 60 * 24 * 365)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool("SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG)
SECURE_HSTS_PRELOAD = env.bool("SECURE_HSTS_PRELOAD", default=not DEBUG)
# Only behind a proxy that terminates TLS and always sets this header, e.g.
# "HTTP_X_FORWARDED_PROTO,https"; otherwise a client could claim HTTPS.
_proxy_ssl_header = env.list("SECURE_PROXY_SSL_HEADER", default=[])
if _proxy_ssl_header:
    if len(_proxy_ssl_header) != 2:
        raise ImproperlyConfigured(
            "SECURE_PROXY_SSL_HEADER is a header and a value, e.g. HTTP_X_FORWARDED_PROTO,https"
        )
    SECURE_PROXY_SSL_HEADER = (_proxy_ssl_header[0], _proxy_ssl_header[1])
SESSION_COOKIE_SECURE = env.bool("SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("CSRF_COOKIE_SECURE", default=not DEBUG)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
X_FRAME_OPTIONS = "DENY"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
# teamchat.security builds the Content-Security-Policy from ALLOWED_HOSTS.

# --- Email ----------------------------------------------------------------
EMAIL_BACKEND = env.str("EMAIL_BACKEND", default="django.core.mail.backends.console.EmailBackend")
EMAIL_HOST = env.str("EMAIL_HOST", default="localhost")
EMAIL_PORT = env.int("EMAIL_PORT", default=25)
EMAIL_HOST_USER = env.str("EMAIL_HOST_USER", default="")
EMAIL_HOST_PASSWORD = env.str("EMAIL_HOST_PASSWORD", default="")
EMAIL_USE_TLS = env.bool("EMAIL_USE_TLS", default=False)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="TeamChat <noreply@localhost>")

# --- Static files ---------------------------------------------------------
STATIC_URL = "/static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STATICFILES_DIRS = [BASE_DIR / "static"]
# Files people upload: a private directory outside the static files (never
# served by whitenoise or a web server directly; every download is checked).
UPLOADS_DIR = Path(env("UPLOADS_DIR", default=str(BASE_DIR / "var" / "uploads")))
# Or an S3-compatible bucket (AWS, MinIO, Ceph...) when UPLOADS_S3_BUCKET is
# set: private objects, no public or signed URLs handed out; downloads still
# pass the access check and are streamed (or handed to the proxy).
UPLOADS_S3_BUCKET = env.str("UPLOADS_S3_BUCKET", default="")
_uploads_storage: dict = {
    "BACKEND": "django.core.files.storage.FileSystemStorage",
    "OPTIONS": {"location": str(UPLOADS_DIR), "base_url": None},
}
if UPLOADS_S3_BUCKET:
    _uploads_storage = {
        "BACKEND": "storages.backends.s3.S3Storage",
        "OPTIONS": {
            "bucket_name": UPLOADS_S3_BUCKET,
            "endpoint_url": env.str("UPLOADS_S3_ENDPOINT_URL", default="") or None,
            "region_name": env.str("UPLOADS_S3_REGION", default="") or None,
            "access_key": env.str("UPLOADS_S3_ACCESS_KEY_ID", default="") or None,
            "secret_key": env.str("UPLOADS_S3_SECRET_ACCESS_KEY", default="") or None,
            "default_acl": "private",
            "querystring_auth": True,
            # Keys are random and never reused: no existence check per save.
            "file_overwrite": True,
            # A download is buffered on disk past 1 MiB, never whole in memory.
            "max_memory_size": 1024 * 1024,
            "location": env.str("UPLOADS_S3_PREFIX", default="uploads"),
        },
    }
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "teamchat.storage.StaticFilesStorage"},
    "uploads": _uploads_storage,
}

# --- Internationalisation -------------------------------------------------
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

# --- Chat -----------------------------------------------------------------
# A request body (not counting file uploads) is at most what a socket frame
# may be (teamchat.server.MAX_FRAME_BYTES): room for a 12,000-character
# message however it is escaped, and nothing like the 2.5 MB Django allows.
DATA_UPLOAD_MAX_MEMORY_SIZE = 128 * 1024
# Per-user send rate: a token bucket refilled at RATE per second, holding BURST.
CHAT_RATE_LIMIT = env.float("CHAT_RATE_LIMIT", default=10.0)
CHAT_RATE_BURST = env.int("CHAT_RATE_BURST", default=20)
# Read markers and typing hints have buckets of their own, generous for a page
# (which moves its marker every few messages and types in bursts) and a bound
# on what one account can make the server do.
CHAT_READ_RATE_LIMIT = env.float("CHAT_READ_RATE_LIMIT", default=20.0)
CHAT_READ_RATE_BURST = env.int("CHAT_READ_RATE_BURST", default=50)
CHAT_TYPING_RATE_LIMIT = env.float("CHAT_TYPING_RATE_LIMIT", default=5.0)
# Typing hints are forwarded only in rooms of at most this many members.
CHAT_TYPING_MAX_MEMBERS = env.int("CHAT_TYPING_MAX_MEMBERS", default=100)
CHAT_TYPING_RATE_BURST = env.int("CHAT_TYPING_RATE_BURST", default=20)
# Frames of any kind per socket and second (burst); past it the socket is read more slowly.
CHAT_SOCKET_FRAME_RATE = env.float("CHAT_SOCKET_FRAME_RATE", default=100.0)
CHAT_SOCKET_FRAME_BURST = env.int("CHAT_SOCKET_FRAME_BURST", default=200)
# Presence frames (a tab's state, whom it follows): every tab of a user says
# both after a restart, so the burst covers the socket cap twice over.
CHAT_PRESENCE_RATE_LIMIT = env.float("CHAT_PRESENCE_RATE_LIMIT", default=5.0)
CHAT_PRESENCE_RATE_BURST = env.int("CHAT_PRESENCE_RATE_BURST", default=50)
# Searches per user: a token bucket (per second, burst), across processes.
CHAT_SEARCH_RATE_LIMIT = env.float("CHAT_SEARCH_RATE_LIMIT", default=1.0)
CHAT_SEARCH_RATE_BURST = env.int("CHAT_SEARCH_RATE_BURST", default=10)
# What one account may do per hour: rooms created, people invited, group
# conversations started (each adds people to something without asking them).
CHAT_ROOMS_PER_HOUR = env.int("CHAT_ROOMS_PER_HOUR", default=20)
CHAT_INVITES_PER_HOUR = env.int("CHAT_INVITES_PER_HOUR", default=50)
CHAT_GROUP_DMS_PER_HOUR = env.int("CHAT_GROUP_DMS_PER_HOUR", default=20)
# Open sockets one account may hold at once (tabs, devices, bots).
CHAT_MAX_SOCKETS_PER_USER = env.int("CHAT_MAX_SOCKETS_PER_USER", default=20)
# Presence changes are gathered and announced at most this often (seconds);
# going offline is announced only after the grace period, so a reconnect or a
# reloaded tab does not show its user offline for a moment.
CHAT_PRESENCE_ANNOUNCE_SECONDS = env.float("CHAT_PRESENCE_ANNOUNCE_SECONDS", default=1.0)
CHAT_PRESENCE_OFFLINE_GRACE_SECONDS = env.float("CHAT_PRESENCE_OFFLINE_GRACE_SECONDS", default=5.0)
# How often an open socket re-checks that its session is still valid, so a
# session that simply expires closes its sockets too.
CHAT_SESSION_RECHECK_SECONDS = env.int("CHAT_SESSION_RECHECK_SECONDS", default=60)
# Logged events (the socket catch-up's source) are kept this long;
# `manage.py prune_events` deletes older ones, and a socket resuming from
# before them is told to reload.
EVENT_LOG_KEEP_DAYS = env.float("EVENT_LOG_KEEP_DAYS", default=30)
# How often each process compares the events it was sent with the log's
# newest seq (one indexed query): an event whose publish failed reaches every
# socket within about twice this.
CHAT_GAP_CHECK_SECONDS = env.float("CHAT_GAP_CHECK_SECONDS", default=2.0)

# --- Uploads --------------------------------------------------------------
# Largest file (bytes). Counted while the body streams in: the server refuses
# a request declaring more (plus UPLOADS_MULTIPART_SLACK for the multipart
# framing) before reading it, and stops reading a chunked one past it.
UPLOADS_MAX_BYTES = env.int("UPLOADS_MAX_BYTES", default=25 * 1024 * 1024)
UPLOADS_MULTIPART_SLACK = 64 * 1024
# Files one message may carry (PROTOCOL v2: at most 10).
UPLOADS_MAX_PER_MESSAGE = min(env.int("UPLOADS_MAX_PER_MESSAGE", default=10), 10)
# What one account may keep stored (bytes, every upload it has not deleted).
UPLOADS_QUOTA_BYTES = env.int("UPLOADS_QUOTA_BYTES", default=1024 * 1024 * 1024)
# Uploads per user: a token bucket (per second, burst), across processes.
UPLOADS_RATE_LIMIT = env.float("UPLOADS_RATE_LIMIT", default=0.5)
UPLOADS_RATE_BURST = env.int("UPLOADS_RATE_BURST", default=20)
# The box thumbnails fit in (never enlarged).
UPLOADS_THUMBNAIL_SIZE = (
    env.int("UPLOADS_THUMBNAIL_WIDTH", default=480),
    env.int("UPLOADS_THUMBNAIL_HEIGHT", default=360),
)
# Uploads no message carries are deleted after this many hours (uploads_prune).
UPLOADS_UNATTACHED_HOURS = env.int("UPLOADS_UNATTACHED_HOURS", default=24)
# Who sends the bytes once the access check has passed: this process
# ("django", streamed from the storage), or the proxy in front of it
# ("x-accel-redirect" for nginx, "x-sendfile" for Apache/lighttpd), given the
# file's path under UPLOADS_INTERNAL_PREFIX (nginx: an `internal` location;
# X-Sendfile: a directory prefix, UPLOADS_DIR by default).
UPLOADS_SERVE = env.str("UPLOADS_SERVE", default="django")
if UPLOADS_SERVE not in ("django", "x-accel-redirect", "x-sendfile"):
    raise ImproperlyConfigured("UPLOADS_SERVE must be django, x-accel-redirect or x-sendfile.")
if UPLOADS_SERVE != "django" and UPLOADS_S3_BUCKET:
    raise ImproperlyConfigured("UPLOADS_SERVE proxy modes need the local UPLOADS_DIR storage.")
UPLOADS_INTERNAL_PREFIX = env.str(
    "UPLOADS_INTERNAL_PREFIX",
    default="/_uploads/" if UPLOADS_SERVE != "x-sendfile" else str(UPLOADS_DIR) + "/",
)
# Uploaded files go to a temporary file on disk as they are parsed, never to
# memory, after the first handler has counted them against UPLOADS_MAX_BYTES.
FILE_UPLOAD_HANDLERS = [
    "chat.uploads.handlers.SizeLimitHandler",
    "django.core.files.uploadhandler.TemporaryFileUploadHandler",
]

# --- Integrations ---------------------------------------------------------
# Posts per second (and burst) one incoming webhook may make.
WEBHOOK_RATE_LIMIT = env.float("WEBHOOK_RATE_LIMIT", default=1.0)
WEBHOOK_RATE_BURST = env.int("WEBHOOK_RATE_BURST", default=10)
# Exports run in a thread of the web process that was asked (no worker
# needed); `manage.py export_worker` also runs them, and retakes any whose
# process died.
EXPORTS_IN_PROCESS = env.bool("EXPORTS_IN_PROCESS", default=True)

# --- Outgoing webhooks -----------------------------------------------------
# Deliveries to loopback, private, link-local and other non-public addresses
# are refused (after DNS resolution) unless this is on: for a receiver on the
# same host or network, which only an admin can judge safe.
WEBHOOK_ALLOW_PRIVATE = env.bool("WEBHOOK_ALLOW_PRIVATE", default=False)
# Seconds to wait before each retry of a failed delivery; after the last one
# the delivery is marked failed (1 + len attempts in all).
WEBHOOK_RETRY_DELAYS = env.list(
    "WEBHOOK_RETRY_DELAYS", cast=float, default=[10.0, 30.0, 120.0, 600.0, 3600.0]
)
# Seconds a receiver gets to connect, and between bytes of its answer.
WEBHOOK_TIMEOUT_SECONDS = env.float("WEBHOOK_TIMEOUT_SECONDS", default=10.0)
# How long a delivery a worker took stays its own: a worker killed while
# sending leaves it to be sent again after this. Longer than a whole attempt.
WEBHOOK_LEASE_SECONDS = env.float("WEBHOOK_LEASE_SECONDS", default=60.0)
# How often an idle worker looks for due deliveries.
WEBHOOK_POLL_SECONDS = env.float("WEBHOOK_POLL_SECONDS", default=1.0)
# Delivered and failed deliveries are kept this long for their owners to see.
WEBHOOK_DELIVERIES_KEEP_DAYS = env.int("WEBHOOK_DELIVERIES_KEEP_DAYS", default=30)

# --- Operations -----------------------------------------------------------
# /metrics answers loopback clients, and others that present this token as
# `Authorization: Bearer <token>` (unset: loopback only).
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")
# The worker commands (webhook_worker, export_worker) serve their metrics on
# this port (0: not at all; `--metrics-port` per worker when several run on
# one host), without a token: on loopback unless told otherwise.
WORKER_METRICS_PORT = env.int("WORKER_METRICS_PORT", default=0)
WORKER_METRICS_ADDR = env.str("WORKER_METRICS_ADDR", default="127.0.0.1")
# Scrapers and probes speak plain HTTP to the process itself.
SECURE_REDIRECT_EXEMPT = [r"^metrics$", r"^healthz$", r"^readyz$"]

# --- Logging --------------------------------------------------------------
# Everything goes to the console, every record cut to LOG_MAX_MESSAGE_CHARS
# so a client cannot fill the logs through a message that gets logged.
# Django's defaults would also mail request errors to ADMINS; replacing the
# handlers of its loggers here turns that off (a request's details may hold
# what people wrote).
LOG_MAX_MESSAGE_CHARS = env.int("LOG_MAX_MESSAGE_CHARS", default=2000)
# "plain" (a line of text) or "json" (one JSON object a line, for collectors).
LOG_FORMAT = env.str("LOG_FORMAT", default="plain")
if LOG_FORMAT not in ("plain", "json"):
    raise ImproperlyConfigured("LOG_FORMAT is plain or json.")
# The socket transport's fast path and slow-client bound reach into daphne,
# Twisted and autobahn (chat.realtime.transport). The server checks them at
# start-up and, when this is on, refuses to start if any is missing rather
# than run without them. Off by default (a development machine still runs);
# turn it on in production (docs/operations.md, "Socket transport").
TEAMCHAT_TRANSPORT_REQUIRED = env.bool("TEAMCHAT_TRANSPORT_REQUIRED", default=False)

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {
        "truncate": {"()": "teamchat.logging.TruncateFilter", "max_chars": LOG_MAX_MESSAGE_CHARS}
    },
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s %(message)s"},
        "json": {"()": "teamchat.logging.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["truncate"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", default="INFO")},
    "loggers": {
        "django": {"handlers": [], "propagate": True},
        "django.server": {"handlers": [], "propagate": True},
        "django.request": {"level": "ERROR"},
    },
}
