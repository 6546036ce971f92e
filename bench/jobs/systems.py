"""The three job systems under test, behind one small interface the measurements drive.

Each system can: `reset()` its queue state (workers stopped), `start()` its workers,
`request_enqueue(i)` one job as a request would (inside `transaction.atomic()`, pushed on
commit), `fill(n)` a backlog fast, say how many jobs are `done()`, and for tagged batches
`send_now`/`send_later` a job and report per-job `delays(batch)`: pickup (start - enqueue) or
lateness (start - due), in seconds.
"""

import functools
import os
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta

from django.db import connection, transaction

from bench.common.procs import Service

QUEUE = "default"
TITLES = {
    "ours": "ours (bimride.jobs)",
    "ours-pooled": "ours through PgBouncer",
    "ours-polling": "ours through PgBouncer, polling",
}
WORKERS = 2
JOB_NAME = f"bench.noop_{QUEUE}"
PLAIN_FUNC = "bench.common.jobtypes.plain_noop"
_TRUNCATE = (
    "TRUNCATE jobs_job, jobs_jobevent, jobs_deadletter, django_q_ormq, django_q_task,"
    " django_q_schedule, bench_marks RESTART IDENTITY CASCADE"
)


_direct = None


def sql(query: str, params: list | None = None) -> list[tuple]:
    """The benchmark's own statements (resets, counters, marks): on BENCH_DIRECT_URL, straight to
    PostgreSQL, when the system under test talks to it through a pooler."""
    global _direct
    url = os.environ.get("BENCH_DIRECT_URL")
    if not url:
        with connection.cursor() as cursor:
            cursor.execute(query, params or [])
            return cursor.fetchall() if cursor.description else []
    if _direct is None or _direct.closed:
        import psycopg

        _direct = psycopg.connect(url, autocommit=True)
    cursor = _direct.execute(query, params or [])
    return cursor.fetchall() if cursor.description else []


def db_counters() -> dict[str, int]:
    """This database's committed transactions and rows written so far (pg_stat_database).

    Other backends report theirs when they exit or go idle; this one is made to report first.
    """
    sql("SELECT pg_stat_force_next_flush()")
    sql("SELECT pg_stat_clear_snapshot()")
    commits, written = sql(
        "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted FROM pg_stat_database"
        " WHERE datname = current_database()"
    )[0]
    return {"commits": commits, "rows_written": written}


def qcluster(name: str, env: dict[str, str]) -> Service:
    return Service(name, [sys.executable, "manage.py", "qcluster"], env)


class Ours:
    """bimride.jobs: Job ledger, PostgresBroker (SKIP LOCKED, LISTEN/NOTIFY), run_job claim."""

    key = "ours"
    title = "ours (bimride.jobs)"
    defer_spread = 3.0  # seconds over which deferred jobs are enqueued

    def __init__(self, workers: int = WORKERS, key: str = "ours"):
        self.workers = workers
        self.key = key
        self.title = TITLES[key]

    def reset(self) -> None:
        sql(_TRUNCATE)

    def start(self) -> Service:
        # Q_CLUSTER_NAME equal to the cluster's `name` leaves ALT_CLUSTERS unused, so the
        # default queue takes Q_WORKERS; both are set.
        return qcluster(
            self.key,
            {
                "Q_CLUSTER_NAME": QUEUE,
                "Q_WORKERS": str(self.workers),
                f"Q_WORKERS_{QUEUE.upper()}": str(self.workers),
                "JOB_EXTRA_MODULES": "bench.common.jobtypes",
                "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
            },
        )

    def request_enqueue(self, i: int) -> None:
        from bimride.jobs.engine.enqueue import enqueue

        with transaction.atomic():
            enqueue(JOB_NAME, {"n": i})

    def fill(self, n: int) -> None:
        from bimride.jobs.engine.enqueue import enqueue

        for start in range(0, n, 100):
            with transaction.atomic():
                for i in range(start, min(n, start + 100)):
                    enqueue(JOB_NAME, {"n": i})

    def analyze(self) -> None:
        sql("ANALYZE")  # fresh planner statistics, as autovacuum keeps them in production

    def counters(self) -> dict[str, int] | None:
        return db_counters()

    def done(self) -> int:
        return sql("SELECT count(*) FROM jobs_job WHERE state = 'succeeded'")[0][0]

    def batch(self) -> int:
        return sql("SELECT coalesce(max(id), 0) FROM jobs_job")[0][0]

    def send_now(self, batch: int, i: int) -> None:
        self.request_enqueue(i)

    def send_later(self, batch: int, i: int, delay: float) -> None:
        from bimride.jobs.engine.enqueue import enqueue

        with transaction.atomic():
            enqueue(JOB_NAME, {"n": i}, delay=timedelta(seconds=delay))

    def delays(self, batch: int, kind: str) -> list[float]:
        """started_at - created_at (pickup) or started_at - run_at (lateness), succeeded only."""
        since = "created_at" if kind == "pickup" else "run_at"
        rows = sql(
            f"SELECT EXTRACT(EPOCH FROM started_at - {since}) FROM jobs_job"
            " WHERE id > %s AND state = 'succeeded'",
            [batch],
        )
        return [float(row[0]) for row in rows]


class PlainQ2:
    """Plain django-q2: async_task() of a plain function into the stock ORM broker."""

    key = "plain"
    defer_spread = 30.0  # one scheduler period, so lateness samples every phase of its tick

    def __init__(self, profile: str):
        self.profile = profile
        self.key = f"plain-{profile}"
        self.title = f"plain django-q2, {profile}"
        self.filled = 0

    def reset(self) -> None:
        sql(_TRUNCATE)
        self.filled = 0

    def start(self) -> Service:
        return qcluster(
            self.key,
            {
                "DJANGO_SETTINGS_MODULE": "bench.jobs.settings_plain",
                "BENCH_PLAIN_PROFILE": self.profile,
            },
        )

    def _async(self, *args) -> None:
        from django_q.tasks import async_task

        async_task(PLAIN_FUNC, *args)

    def request_enqueue(self, i: int) -> None:
        with transaction.atomic():
            self._async()

    def fill(self, n: int) -> None:
        for start in range(0, n, 100):
            with transaction.atomic():
                for _ in range(start, min(n, start + 100)):
                    self._async()
        self.filled += n

    def analyze(self) -> None:
        sql("ANALYZE")

    def counters(self) -> dict[str, int] | None:
        return db_counters()

    def done(self) -> int:
        """Acknowledged tasks: the monitor deletes a task's queue row after saving its result."""
        return self.filled - sql("SELECT count(*) FROM django_q_ormq")[0][0]

    def batch(self) -> str:
        return uuid.uuid4().hex

    def send_now(self, batch: str, i: int) -> None:
        t_ref = time.time()
        with transaction.atomic():
            self._async(batch, t_ref)

    def send_later(self, batch: str, i: int, delay: float) -> None:
        from django_q.models import Schedule

        due = time.time() + delay
        Schedule.objects.create(
            func=PLAIN_FUNC,
            args=repr((batch, due)),
            schedule_type=Schedule.ONCE,
            repeats=-1,
            next_run=datetime.fromtimestamp(due, UTC),
        )

    def delays(self, batch: str, kind: str) -> list[float]:
        rows = sql("SELECT t_start - t_ref FROM bench_marks WHERE tag = %s", [batch])
        return [float(row[0]) for row in rows]


class CeleryRedis:
    """Celery 5 with a Redis broker: prefork worker, default prefetch and acks."""

    key = "celery"
    title = "Celery + Redis"
    defer_spread = 3.0

    def __init__(self):
        from bench.common import celery_app

        self.app = celery_app

    def reset(self) -> None:
        self.app.clear()

    def start(self) -> Service:
        command = [sys.executable, "-m", "celery", "-A", "bench.common.celery_app", "worker"]
        command += ["-c", str(WORKERS), "-P", "prefork", "-Q", self.app.QUEUE, "-l", "WARNING"]
        return Service("celery", command, {})

    def request_enqueue(self, i: int) -> None:
        with transaction.atomic():
            transaction.on_commit(self.app.noop.delay)

    def fill(self, n: int) -> None:
        for _ in range(n):
            self.app.noop.delay()

    def analyze(self) -> None:
        pass

    def counters(self) -> dict[str, int] | None:
        return None  # Redis: no database work to count

    def done(self) -> int:
        return int(self.app.client().get(self.app.DONE_KEY) or 0)

    def batch(self) -> str:
        return uuid.uuid4().hex

    def send_now(self, batch: str, i: int) -> None:
        t_ref = time.time()
        with transaction.atomic():
            transaction.on_commit(functools.partial(self.app.noop.delay, batch, t_ref))

    def send_later(self, batch: str, i: int, delay: float) -> None:
        due = time.time() + delay
        eta = datetime.fromtimestamp(due, UTC)
        with transaction.atomic():
            transaction.on_commit(
                functools.partial(self.app.noop.apply_async, (batch, due), eta=eta)
            )

    def delays(self, batch: str, kind: str) -> list[float]:
        import json

        marks = (json.loads(m) for m in self.app.client().lrange(self.app.MARKS_KEY, 0, -1))
        return [started - t_ref for tag, t_ref, started in marks if tag == batch]
