"""The job system: queues, time limits, the relay and the pruner, alerts and metrics, worker
processes and their concurrency, provider rate limits, django-q2 (Q_CLUSTER) as its transport,
and Django's Tasks API on top. (Workers' database sessions: database.py.)"""

import os
import socket
from datetime import timedelta
from pathlib import Path

from bimride.settings.database import DB_TRANSACTION_POOLER
from bimride.settings.env import BASE_DIR, env

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
# At most this share of the pruner's time deletes.
JOB_PRUNE_DUTY = env.float("JOB_PRUNE_DUTY", 0.25)
# Names this host in the ledger's `worker` field (`<host>:<pid>`): several hosts on one machine.
JOB_WORKER_HOST = env.str("JOB_WORKER_HOST", "") or socket.gethostname()
# Alerts: more than ALERT_DEAD_LETTERS new dead letters within the window, or a queue whose
# oldest due job waited longer than its SLA (QUEUE_LAG_SLA_<QUEUE> seconds).
ALERT_DEAD_LETTERS = env.int("ALERT_DEAD_LETTERS", 10)
ALERT_DEAD_LETTER_WINDOW = timedelta(minutes=env.int("ALERT_DEAD_LETTER_WINDOW_MINUTES", 15))
QUEUE_LAG_SLA = {
    "critical": env.float("QUEUE_LAG_SLA_CRITICAL", 30),
    "default": env.float("QUEUE_LAG_SLA_DEFAULT", 120),
    "bulk": env.float("QUEUE_LAG_SLA_BULK", 900),
}
# Metrics: counters of every process on this host meet in this directory (prometheus-client's
# multiprocess mode, which reads it from the environment); /metrics answers staff sessions and
# `Authorization: Bearer METRICS_TOKEN`.
METRICS_TOKEN = env.str("METRICS_TOKEN", "")
_metrics_dir = env.str("PROMETHEUS_MULTIPROC_DIR", str(BASE_DIR / ".data" / "metrics"))
os.environ["PROMETHEUS_MULTIPROC_DIR"] = _metrics_dir
Path(_metrics_dir).mkdir(parents=True, exist_ok=True)
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
# it, pushers poll every JOB_POLL_SECONDS instead (docs/deploying.md: what that costs).
JOB_LISTEN_DATABASE_URL = env.str("JOB_LISTEN_DATABASE_URL", "")
JOB_PICKUP = "poll" if DB_TRANSACTION_POOLER and not JOB_LISTEN_DATABASE_URL else "listen"
JOB_LISTEN_CONNECT_TIMEOUT = env.float("JOB_LISTEN_CONNECT_TIMEOUT", 5.0)  # seconds
JOB_POLL_SECONDS = env.float("JOB_POLL_SECONDS", 0.25 if JOB_PICKUP == "poll" else 1.0)

# Attempts in flight per worker process (threads): most jobs of `critical` and `default` wait on
# Stripe or the email provider, `bulk`'s use the CPU (docs/jobs.md, "Concurrency per queue").
JOB_CONCURRENCY = {
    "critical": env.int("JOB_CONCURRENCY_CRITICAL", 25),
    "default": env.int("JOB_CONCURRENCY_DEFAULT", 25),
    "bulk": env.int("JOB_CONCURRENCY_BULK", 1),
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
# 0: no limit). Stripe's documented default for live mode is 100 (docs/jobs.md, "Provider rate
# limits").
# FCM's own quota (600,000 messages a minute per project) is far above what BimRide sends.
PROVIDER_RATE_LIMITS = {"stripe": 100.0, "email": 0.0, "fcm": 0.0} | env.dict(
    "PROVIDER_RATE_LIMITS", cast={"value": float}, default={}
)
Q_CLUSTER = {
    "name": "default",
    "orm": "default",
    "broker_class": "bimride.jobs.engine.broker.PostgresBroker",
    # django-q2 applies ALT_CLUSTERS only to clusters not named like this base ("default").
    # Worker processes per queue (Q_WORKERS_<QUEUE>): two each.
    "workers": env.int("Q_WORKERS_DEFAULT", 2),
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
        "critical": {"workers": env.int("Q_WORKERS_CRITICAL", 2)},
        "bulk": {"workers": env.int("Q_WORKERS_BULK", 2)},
    },
}
