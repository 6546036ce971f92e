"""The database: PostgreSQL at DATABASE_URL, its connections in web and worker processes, and
what changes behind a transaction-mode pooler (PgBouncer)."""

import os
import sys
import warnings

from django.core.exceptions import ImproperlyConfigured

from bimride.settings.env import env

_EXAMPLE = "postgresql://user:password@host:5432/bimride"
# Always from the environment: `make run`, `make test` and the benchmarks export the URL of the
# embedded PostgreSQL (devtools.devdb) unless DATABASE_URL is set already.
_url = env.str("DATABASE_URL", "")
if not _url:
    raise ImproperlyConfigured(
        "DATABASE_URL is not set. `make run` and `make test` set it. For manage.py (or pytest) "
        'by hand: export DATABASE_URL="$(make -s db-start)" to use the embedded PostgreSQL, or '
        f"point it at your PostgreSQL (export DATABASE_URL={_EXAMPLE})."
    )
try:
    with warnings.catch_warnings():  # django-environ's "Engine not recognized" shows the password
        warnings.simplefilter("ignore")
        _config = env.db_url_config(_url)
except ValueError:  # a port that is not a number, an unbalanced [IPv6 address
    _config = {}
if _config.get("ENGINE") != "django.db.backends.postgresql":  # not shown: it may hold a password
    raise ImproperlyConfigured(f"DATABASE_URL is not a PostgreSQL URL like {_EXAMPLE}.")
DATABASES = {"default": _config}
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
