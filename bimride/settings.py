"""BimRide settings, all from the environment (see the README's configuration table).

Development defaults are safe and offline. `DJANGO_ENV=production` turns on the secure settings
and refuses to start without the variables production needs.
"""

import os
import socket
import sys
import warnings
from datetime import timedelta
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

BASE_DIR = Path(__file__).resolve().parent.parent
env = environ.Env()

DJANGO_ENV = env.str("DJANGO_ENV", "development")
PRODUCTION = DJANGO_ENV == "production"
TESTING = env.bool("BIMRIDE_TESTING", False)

if PRODUCTION:
    _missing = [
        name for name in ("SECRET_KEY", "DATABASE_URL", "ALLOWED_HOSTS") if not env.str(name, "")
    ]
    if _missing:
        raise ImproperlyConfigured(
            "DJANGO_ENV=production needs these environment variables: " + ", ".join(_missing)
        )

SECRET_KEY = env.str("SECRET_KEY", "dev-only-insecure-key-0123456789-abcdefghijklmnopqrstuvwxyz")
DEBUG = env.bool("DEBUG", not PRODUCTION)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
ADMINS = [("Ops", a) for a in env.list("ADMINS", default=[])]

INSTALLED_APPS = [
    "bimride.access.apps.StaffAdminConfig",  # django.contrib.admin behind two factors
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_q",
    "django_tasks",
    "anymail",
    "axes",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "bimride",
    "bimride.access",  # after axes: its receivers see axes' verdict on each attempt
    "bimride.jobs",
    "rides",
    "payments",
    "notifications",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "bimride.tracing.TraceMiddleware",
    "bimride.api.ApiErrorMiddleware",  # outside the rest: sees every answer under /api/
    "bimride.health.DatabaseUnavailableMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "bimride.access.middleware.StaffSessionIdleMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last: turns a locked-out sign-in into a 429
]

if PRODUCTION:  # gunicorn serves the admin's and API docs' assets (runserver does in dev)
    MIDDLEWARE.insert(1, "whitenoise.middleware.WhiteNoiseMiddleware")

ROOT_URLCONF = "bimride.urls"
WSGI_APPLICATION = "bimride.wsgi.application"

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


def _database_url() -> str:
    url = env.str("DATABASE_URL", "")
    if url:
        return url
    from devtools import devdb  # the embedded server of `make run` / `make test`

    return devdb.database_url()


DATABASES = {"default": env.db_url_config(_database_url())}
if not DATABASES["default"]["HOST"]:  # postgresql://user@/db?host=/socket/dir
    DATABASES["default"]["HOST"] = DATABASES["default"].get("OPTIONS", {}).pop("host", "")
# One test database per test session, so two sessions on one server never collide.
DATABASES["default"]["TEST"] = {"NAME": f"test_{DATABASES['default']['NAME']}_{os.getpid()}"}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", 600)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
DATABASES["default"].setdefault("OPTIONS", {})["connect_timeout"] = 5
# Behind a transaction-mode pooler (PgBouncer), a server session outlives no transaction:
# DB_TRANSACTION_POOLER=1 prepares no statements, reads QuerySet.iterator() in chunks without a
# WITH HOLD cursor, and sends no startup `options` (PgBouncer refuses it).
DB_TRANSACTION_POOLER = env.bool("DB_TRANSACTION_POOLER", False)
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DB_TRANSACTION_POOLER
# Parameters bound by the server, and a statement run twice on a connection is prepared: the
# ORM's statements repeat, so PostgreSQL parses and plans each once per connection instead of
# per call. DB_PREPARE_THRESHOLD=0 turns preparing off (behind a transaction-mode pooler).
_PREPARE_THRESHOLD = env.int("DB_PREPARE_THRESHOLD", 0 if DB_TRANSACTION_POOLER else 2)
if _PREPARE_THRESHOLD:
    DATABASES["default"]["OPTIONS"] |= {
        "server_side_binding": True,
        "prepare_threshold": _PREPARE_THRESHOLD,
    }
# Worker processes commit asynchronously: if PostgreSQL itself crashes, the last fraction of a
# second of job bookkeeping rolls back together with the effects it recorded, and those jobs
# run again (at least once; external calls carry idempotency keys). What requests commit stays
# synchronous. JOB_ASYNC_COMMIT=0 makes workers wait for every flush (about 1 ms a commit).
# Directly connected, a worker's session says so once (startup `options`); behind a
# transaction-mode pooler, which refuses startup `options` and shares server sessions, the runner
# says it in each of its transactions instead (`SET LOCAL`, bimride.jobs.engine.runner).
WORKER_PROCESS = sys.argv[1:2] == ["qcluster"]
JOB_ASYNC_COMMIT = WORKER_PROCESS and env.bool("JOB_ASYNC_COMMIT", True)
if JOB_ASYNC_COMMIT and not DB_TRANSACTION_POOLER:
    DATABASES["default"]["OPTIONS"]["options"] = "-c synchronous_commit=off"
if WORKER_PROCESS:
    # django-q2 checks connections before every task; with health checks on that is a
    # `SELECT 1` a job. Workers reconnect by themselves after an error (bimride.db.patiently,
    # the broker), so they skip it.
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# --- Sign-in security -----------------------------------------------------------------------------
# Every way in (admin, browsable API, POST /api/auth/token) authenticates through axes first: a
# locked-out account or address is refused before its password is checked.
AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

# Failed sign-ins lock in layers (bimride.access.lockout says how; the README why these figures):
# the account from one address after LOGIN_FAILURE_LIMIT failures (django-axes' own lock); the
# address, at any accounts, after LOGIN_ADDRESS_FAILURE_LIMIT (sized for carrier NAT: thousands
# of riders behind one address); the account, from any addresses, after
# LOGIN_ACCOUNT_FAILURE_LIMIT, refused only where its owner has not signed in before (staff:
# after LOGIN_FAILURE_LIMIT, everywhere). The counts live in the database (shared by every web
# process) and lapse LOGIN_COOLOFF_MINUTES after the last failure; a success forgets the
# account's failures from that address; attempts refused while locked do not extend the lock.
AXES_HANDLER = "bimride.access.lockout.LayeredLockoutHandler"
AXES_FAILURE_LIMIT = env.int("LOGIN_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env.float("LOGIN_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
LOGIN_ADDRESS_FAILURE_LIMIT = env.int("LOGIN_ADDRESS_FAILURE_LIMIT", 100)
LOGIN_ACCOUNT_FAILURE_LIMIT = env.int("LOGIN_ACCOUNT_FAILURE_LIMIT", 20)
LOGIN_KNOWN_ADDRESS_DAYS = env.int("LOGIN_KNOWN_ADDRESS_DAYS", 90)
# Not axes' reset, which forgets every failure of the account or the address: a success on
# one's own account would wipe the guesses at another from the same address (bimride.access).
AXES_RESET_ON_SUCCESS = False
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_USERNAME_CALLABLE = "bimride.access.lockout.attempted_username"
AXES_CLIENT_IP_CALLABLE = "bimride.access.lockout.client_ip"
AXES_LOCKOUT_CALLABLE = "bimride.access.lockout.lockout_response"
AXES_DISABLE_ACCESS_LOG = True  # bimride.access keeps the audit of sign-ins (SignInEvent)
AXES_VERBOSE = False
AXES_SENSITIVE_PARAMETERS = ["username", "ip_address", "otp_token"]  # masked in its records
# The client's address is REMOTE_ADDR unless the app sits behind this many proxies that each
# append to X-Forwarded-For; then it is the address the outermost trusted proxy saw.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", 0)
# Staff sign in with a TOTP code (or a recovery code): required in production; in development
# a staff user without a device signs in with the password alone and is asked to enrol.
STAFF_OTP_REQUIRED = env.bool("STAFF_OTP_REQUIRED", PRODUCTION)
OTP_TOTP_ISSUER = env.str("OTP_TOTP_ISSUER", "BimRide")
# A staff session ends after this long without a request; other sessions last SESSION_COOKIE_AGE.
STAFF_SESSION_IDLE = timedelta(minutes=env.int("STAFF_SESSION_IDLE_MINUTES", 30))
SESSION_COOKIE_HTTPONLY = True
# Each web process keeps an API token it checked, with the token's user and profile, this many
# seconds (0: not at all): deleting the token or saving its user takes effect at once in the
# process that did it, and within these seconds in the others.
AUTH_TOKEN_CACHE_SECONDS = env.int("AUTH_TOKEN_CACHE_SECONDS", 10)
AUTH_TOKEN_CACHE_SIZE = 10_000  # tokens per process; past it, the expired ones are dropped
LOGIN_URL = "admin:login"
LOGIN_REDIRECT_URL = "/api/docs/"  # after the browsable API's sign-in without a `next`

LANGUAGE_CODE = "en-us"
TIME_ZONE = env.str("TIME_ZONE", "UTC")
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "static"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if PRODUCTION
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# Request bodies: the API takes small JSON documents.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_BODY_BYTES", 64 * 1024)

CACHES = {"default": env.cache_url("CACHE_URL", default="locmemcache://")}

# --- REST API -----------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "bimride.authentication.TokenAuthentication",
        "bimride.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "bimride.api.Pagination",
    "PAGE_SIZE": 20,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "bimride.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "bimride.schema.AutoSchema",  # documents every error answer
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", "60/min"),
        "user": env.str("THROTTLE_USER", "6000/min"),
        "auth": env.str("THROTTLE_AUTH", "20/min"),
        "ride_create": env.str("THROTTLE_RIDE_CREATE", "30/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "SWAGGER_UI_DIST": "SIDECAR",  # served locally: the docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "TITLE": "BimRide API",
    "DESCRIPTION": (
        "Riders request rides, drivers take them; slow work runs in background jobs.\n\n"
        'Every error has one shape, `{"error": {"code", "message", "fields"}}`; each '
        "operation lists the statuses it can answer and, for each, its codes. 429 and 503 carry "
        "`Retry-After`. Query parameters an operation lists are validated (a value out of range "
        "answers 400 `invalid` naming it in `fields`); any other query parameter is ignored.\n\n"
        "Under `/api/` every answer is JSON, whatever the server's DEBUG setting: a path no "
        "operation has, or an id in a path that is not a whole number of 1 to 18 digits "
        "(`/api/rides/abc`), answers 404 `not_found`; a method an operation does not list "
        "answers 405 `method_not_allowed` with `Allow` naming the methods it has (after 401 or "
        "403 when the caller may not use the path at all); a body that is not JSON answers 415 "
        "`unsupported_media_type`, JSON that cannot be read 400 `parse_error`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # bimride.schema: the error answers come from its AutoSchema; links and webhooks from here
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bimride.schema.postprocess",
    ],
    # `<id:…>` in a path (bimride.api.IdConverter): digits only, within the id column
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
    },
    "TAGS": [
        {"name": "webhooks", "description": "Called by Stripe and the email provider, not by apps."}
    ],
    # named, where a field name alone ("kind") would give the enum a hashed name
    "ENUM_NAME_OVERRIDES": {"NotificationKindEnum": "notifications.models.Kind"},
}

# --- Rides and fares (integer minor units) ------------------------------------------------------
FARE_CURRENCY = env.str("FARE_CURRENCY", "usd")
FARE_BASE = env.int("FARE_BASE", 250)
FARE_PER_KM = env.int("FARE_PER_KM", 120)
FARE_PER_MIN = env.int("FARE_PER_MIN", 30)
RIDE_EXPIRY = timedelta(seconds=env.int("RIDE_EXPIRY_SECONDS", 300))
MATCH_DRIVERS = env.int("MATCH_DRIVERS", 5)
# A rider hears "your driver is arriving" once the driver's last ping is this close to the
# pickup: about two minutes out in town, so the every-minute sweep still tells them in time.
ARRIVING_DISTANCE_KM = env.float("ARRIVING_DISTANCE_KM", 1.0)

# --- Job system ---------------------------------------------------------------------------------
JOB_QUEUES = ("critical", "default", "bulk")
JOB_MAX_TIMEOUT = env.int("JOB_MAX_TIMEOUT", 300)  # no job type may declare a longer timeout
JOB_RELAY_AFTER = timedelta(seconds=env.int("JOB_RELAY_AFTER_SECONDS", 10))
JOB_LEASE_GRACE = timedelta(seconds=env.int("JOB_LEASE_GRACE_SECONDS", 5))
# A job taken from the broker but not started this long after is handed out again by the relay.
JOB_STALL_AFTER = timedelta(seconds=env.int("JOB_STALL_AFTER_SECONDS", 60))
# How long a worker keeps retrying its own bookkeeping while the database is unreachable.
JOB_DB_OUTAGE_PATIENCE = env.int("JOB_DB_OUTAGE_PATIENCE_SECONDS", 120)
JOB_RETENTION = timedelta(days=env.int("JOB_RETENTION_DAYS", 7))
JOB_PRUNE_BATCH = env.int("JOB_PRUNE_BATCH", 1000)  # finished jobs deleted per transaction
JOB_PRUNE_DUTY = env.float(
    "JOB_PRUNE_DUTY", 0.25
)  # at most this share of the pruner's time deletes
# Names this host in the ledger's `worker` field (`<host>:<pid>`): several hosts on one machine.
JOB_WORKER_HOST = env.str("JOB_WORKER_HOST", "") or socket.gethostname()
# Alerts: more than ALERT_DEAD_LETTERS new dead letters within the window, or a queue whose
# oldest due job waited longer than its SLA (QUEUE_LAG_SLA_<QUEUE> seconds).
ALERT_DEAD_LETTERS = env.int("ALERT_DEAD_LETTERS", 10)
ALERT_DEAD_LETTER_WINDOW = timedelta(minutes=env.int("ALERT_DEAD_LETTER_WINDOW_MINUTES", 15))
QUEUE_LAG_SLA = {
    queue: env.float(f"QUEUE_LAG_SLA_{queue.upper()}", default)
    for queue, default in (("critical", 30), ("default", 120), ("bulk", 900))
}
# Metrics: counters of every process on this host meet in this directory (prometheus-client's
# multiprocess mode); /metrics answers staff sessions and `Authorization: Bearer METRICS_TOKEN`.
METRICS_TOKEN = env.str("METRICS_TOKEN", "")
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(BASE_DIR / ".data" / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
# Extra modules declaring job types, beside every app's tasks.py (tests and benchmarks).
JOB_EXTRA_MODULES = env.list("JOB_EXTRA_MODULES", default=[])
READY_MAX_LAG_SECONDS = env.float("READY_MAX_LAG_SECONDS", 300)
JOB_RETRY_SCALE = env.float("JOB_RETRY_SCALE", 1.0)  # multiplies every back-off (tests use 0.01)
# Django's Tasks API (the django-tasks backport): every @task runs as a job on these queues.
TASKS = {
    "default": {
        "BACKEND": "bimride.jobs.tasks_backend.JobBackend",
        "QUEUES": list(JOB_QUEUES),  # a task's queue_name is "default" unless it says otherwise
    }
}

# Idle pushers wait for new jobs on LISTEN/NOTIFY, which needs a session of its own: direct, a
# connection to DATABASE_URL; behind a transaction-mode pooler (where a LISTEN hears nothing),
# one to JOB_LISTEN_DATABASE_URL, the same database bypassing the pooler. Behind a pooler without
# it, pushers poll every JOB_POLL_SECONDS instead (README "Deploying": what that costs).
JOB_LISTEN_DATABASE_URL = env.str("JOB_LISTEN_DATABASE_URL", "")
JOB_PICKUP = "poll" if DB_TRANSACTION_POOLER and not JOB_LISTEN_DATABASE_URL else "listen"
JOB_LISTEN_CONNECT_TIMEOUT = env.float("JOB_LISTEN_CONNECT_TIMEOUT", 5.0)  # seconds
JOB_POLL_SECONDS = env.float("JOB_POLL_SECONDS", 0.25 if JOB_PICKUP == "poll" else 1.0)

_QUEUE_WORKERS = {"critical": 2, "default": 2, "bulk": 2}
# Attempts in flight per worker process (threads): most jobs of `critical` and `default` wait on
# Stripe or the email provider, `bulk`'s use the CPU (README "Concurrency").
JOB_CONCURRENCY = {
    queue: env.int(f"JOB_CONCURRENCY_{queue.upper()}", n)
    for queue, n in (("critical", 25), ("default", 25), ("bulk", 1))
}
JOB_WORKER_QUEUE = env.str("Q_CLUSTER_NAME", "default")  # the queue this process works for
# A worker process running attempts in threads shares this many connections among them (Django's
# psycopg pool; 0: a connection per thread, closed after each attempt); a thread waits up to
# JOB_DB_POOL_TIMEOUT seconds for one. The system check holds a host's workers to
# JOB_DB_CONNECTION_BUDGET connections (pools, or one per single-threaded worker).
JOB_DB_POOL_SIZE = env.int("JOB_DB_POOL_SIZE", 4)
JOB_DB_POOL_TIMEOUT = env.float("JOB_DB_POOL_TIMEOUT", 30.0)
JOB_DB_CONNECTION_BUDGET = env.int("JOB_DB_CONNECTION_BUDGET", 40)
# Requests per second each provider may be sent, by every host together ("stripe=100,email=20";
# 0: no limit). Stripe's documented default for live mode is 100 (README "Rate limits").
# FCM's own quota (600,000 messages a minute per project) is far above what BimRide sends.
PROVIDER_RATE_LIMITS = {"stripe": 100.0, "email": 0.0, "fcm": 0.0} | env.dict(
    "PROVIDER_RATE_LIMITS", cast={"value": float}, default={}
)
Q_CLUSTER = {
    "name": "default",
    "orm": "default",
    "broker_class": "bimride.jobs.engine.broker.PostgresBroker",
    # django-q2 applies ALT_CLUSTERS only to clusters not named like this base ("default").
    "workers": env.int("Q_WORKERS_DEFAULT", _QUEUE_WORKERS["default"]),
    # A worker may wait out a database outage before and after its job's own time limit (which
    # the runner enforces around the handler). django-q2 redelivers a task still unacknowledged
    # after `retry` seconds: above all that, so a slow job is never started twice (the runner's
    # lease rescues jobs whose worker died much sooner).
    "timeout": JOB_MAX_TIMEOUT + 2 * JOB_DB_OUTAGE_PATIENCE + 30,
    "retry": JOB_MAX_TIMEOUT + 2 * JOB_DB_OUTAGE_PATIENCE + 60,
    "max_attempts": 0,
    "ack_failures": False,
    "save_limit": -1,  # the Job ledger is the record of successes
    "bulk": env.int("Q_BULK", 10),
    "recycle": 100_000,
    "poll": JOB_POLL_SECONDS,  # upper bound of an idle wait (LISTEN/NOTIFY wakes it sooner)
    "catch_up": False,
    "label": "Django Q2",
    "ALT_CLUSTERS": {
        queue: {"workers": env.int(f"Q_WORKERS_{queue.upper()}", n)}
        for queue, n in _QUEUE_WORKERS.items()
        if queue != "default"
    },
}

# --- Email --------------------------------------------------------------------------------------
# The provider is a setting, EMAIL_PROVIDER: Postmark by default (anymail tests it upstream; why
# in the README), or SendGrid (anymail still ships it, untested upstream since 13.0.1). Sending
# goes through the provider's anymail backend once its credentials are set; without them,
# development uses EMAIL_BACKEND (the console by default, so it works offline; `make run` starts
# the provider's stand-in and gives its processes the stand-in's credentials).
# <PROVIDER>_API_URL points anymail at a stand-in in tests and benchmarks.
EMAIL_PROVIDERS = {  # provider -> (anymail backend, the variables it needs besides the secret)
    "postmark": ("anymail.backends.postmark.EmailBackend", ("POSTMARK_SERVER_TOKEN",)),
    "sendgrid": ("anymail.backends.sendgrid.EmailBackend", ("SENDGRID_API_KEY",)),
}
EMAIL_PROVIDER = env.str("EMAIL_PROVIDER", "").strip().lower() or "postmark"
if EMAIL_PROVIDER not in EMAIL_PROVIDERS:
    raise ImproperlyConfigured(
        f"EMAIL_PROVIDER={EMAIL_PROVIDER!r} is not one of: " + ", ".join(EMAIL_PROVIDERS)
    )
_email_backend, _email_credentials = EMAIL_PROVIDERS[EMAIL_PROVIDER]
_email_missing = [
    name for name in (*_email_credentials, "ANYMAIL_WEBHOOK_SECRET") if not env.str(name, "")
]
if PRODUCTION and _email_missing:
    raise ImproperlyConfigured(
        f"DJANGO_ENV=production with EMAIL_PROVIDER={EMAIL_PROVIDER} needs these environment "
        "variables: " + ", ".join(_email_missing)
    )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "BimRide <rides@bimride.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if all(env.str(name, "") for name in _email_credentials):
    EMAIL_BACKEND = _email_backend
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
if EMAIL_PROVIDER == "sendgrid":
    # Chosen knowingly (the README states anymail's status for SendGrid): its notice that
    # anymail "has dropped official support for SendGrid" is a system check and a warning from
    # every backend and webhook instance; said once in the README, not by every process.
    SILENCED_SYSTEM_CHECKS = ["anymail.W003"]
    warnings.filterwarnings(
        "ignore", message="django-anymail has dropped official support for SendGrid"
    )
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", str(BASE_DIR / ".data" / "emails"))
ANYMAIL = {
    "POSTMARK_SERVER_TOKEN": env.str("POSTMARK_SERVER_TOKEN", ""),
    "POSTMARK_API_URL": env.str("POSTMARK_API_URL", "https://api.postmarkapp.com/"),
    # Postmark's transactional stream: receipts never share a reputation with broadcasts.
    "POSTMARK_MESSAGE_STREAM": env.str("POSTMARK_MESSAGE_STREAM", "outbound"),
    "SENDGRID_API_KEY": env.str("SENDGRID_API_KEY", ""),
    "SENDGRID_API_URL": env.str("SENDGRID_API_URL", "https://api.sendgrid.com/v3/"),
    # (connect, read) seconds: well inside the email jobs' 30 s timeout, so a hung provider is
    # a failed attempt to retry, not a killed worker.
    "REQUESTS_TIMEOUT": (
        env.float("EMAIL_CONNECT_TIMEOUT", 5.0),
        env.float("EMAIL_READ_TIMEOUT", 10.0),
    ),
    # "user:password" of the tracking webhooks' basic auth; unset, the webhooks refuse all.
    "WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", ""),
}

# --- Pushes -------------------------------------------------------------------------------------
# Firebase Cloud Messaging's HTTP v1 API (notifications/fcm.py), authorised by a service
# account's JSON key: FCM_CREDENTIALS_FILE (a path) or FCM_CREDENTIALS_JSON (the key itself).
# Without one, no push is sent (the events' push jobs say so). `make run` generates a key whose
# token_uri is the loopback stand-in's and points FCM_API_BASE at it (devtools/fcm_standin.py).
FCM_CREDENTIALS_FILE = env.str("FCM_CREDENTIALS_FILE", "")
FCM_CREDENTIALS_JSON = env.str("FCM_CREDENTIALS_JSON", "")
FCM_PROJECT_ID = env.str("FCM_PROJECT_ID", "")  # default: the key's project_id
FCM_API_BASE = env.str("FCM_API_BASE", "https://fcm.googleapis.com")
# (connect, read) seconds: well inside the push job's 30 s timeout, so a slow FCM is a retry.
FCM_TIMEOUT = (env.float("FCM_CONNECT_TIMEOUT", 5.0), env.float("FCM_READ_TIMEOUT", 10.0))
PUSH_DEVICE_MAX_IDLE_DAYS = env.int("PUSH_DEVICE_MAX_IDLE_DAYS", 60)  # then pruned, daily
PUSH_ETA_SPEED_KMH = env.float("PUSH_ETA_SPEED_KMH", 25.0)  # "driver assigned"'s ETA in town

# --- Payments -----------------------------------------------------------------------------------
# Stripe through the real SDK. Without STRIPE_API_KEY, the local stand-in
# (devtools/stripe_standin/, started by `make run`) answers on STRIPE_API_BASE; with the key
# set, the same code talks to Stripe itself.
_STRIPE_KEY = env.str("STRIPE_API_KEY", "")
STRIPE_USES_STANDIN = not _STRIPE_KEY
STRIPE_API_KEY = _STRIPE_KEY or "sk_test_standin"
STRIPE_API_BASE = env.str(
    "STRIPE_API_BASE", "https://api.stripe.com" if _STRIPE_KEY else "http://127.0.0.1:12111"
)
# The stand-in's signing secret: public, so `check --deploy` warns while it is in use.
STRIPE_WEBHOOK_DEVELOPMENT_SECRET = "whsec_dev_standin_secret"  # noqa: S105
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_DEVELOPMENT_SECRET)
if PRODUCTION and not (_STRIPE_KEY and env.str("STRIPE_WEBHOOK_SECRET", "")):
    raise ImproperlyConfigured(
        "DJANGO_ENV=production needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET."
    )
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", 300)  # seconds
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", 20.0)  # seconds; below the payment jobs' 30 s
# The card each rider's customer gets (a Stripe test token; no card number is ever stored).
STRIPE_TEST_PAYMENT_METHOD = env.str("STRIPE_TEST_PAYMENT_METHOD", "pm_card_visa")
CANCELLATION_FEE = env.int("CANCELLATION_FEE", 500)  # minor units of FARE_CURRENCY
CANCELLATION_GRACE_SECONDS = env.int("CANCELLATION_GRACE_SECONDS", 120)
CANCELLATION_FEE_DELAY = timedelta(seconds=env.int("CANCELLATION_FEE_DELAY_SECONDS", 60))
# Weekly incentive: PAYOUT_PER_RIDE for each completed ride of a driver with at least
# PAYOUT_MIN_RIDES completed rides in the ISO week.
PAYOUT_MIN_RIDES = env.int("PAYOUT_MIN_RIDES", 10)
PAYOUT_PER_RIDE = env.int("PAYOUT_PER_RIDE", 100)
# Payouts are Stripe transfers to each driver's connected (Express) account in this country.
STRIPE_CONNECT_COUNTRY = env.str("STRIPE_CONNECT_COUNTRY", "US")

# --- Logging ------------------------------------------------------------------------------------
LOG_LEVEL = env.str("LOG_LEVEL", "INFO")
LOG_FORMAT = env.str("LOG_FORMAT", "json" if PRODUCTION else "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "bimride.tracing.ContextFilter"}},
    "formatters": {
        "text": {
            "format": "%(asctime)s %(levelname)s %(name)s [trace=%(trace_id)s job=%(job_id)s "
            "%(job_name)s attempt=%(attempt)s queue=%(queue)s] %(message)s"
        },
        "json": {"()": "bimride.tracing.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        },
        "mail_admins": {
            "class": "django.utils.log.AdminEmailHandler",
            "level": "ERROR",
            "filters": ["context"],
        },
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        "django-q": {"level": env.str("Q_LOG_LEVEL", "WARNING"), "propagate": True},
        "bimride.alerts": {"handlers": ["mail_admins"], "level": "ERROR", "propagate": True},
    },
}

# --- Production hardening -----------------------------------------------------------------------
if PRODUCTION:
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", True)
    SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", 31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
