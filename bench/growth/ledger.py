"""What `make bench-growth` measures at each size of the ledger: the job path (enqueue, drain,
idle pickup), the pages and endpoints ops staff and Prometheus read, retention, and the size of
the tables. Every function works on the tables as they are and takes away the jobs it added, so
the stored history keeps its size between measurements.
"""

import statistics
import threading
import time
from io import StringIO

from django.conf import settings
from django.db import connection

from bench.jobs.suites import GAP, idle_batch, per_job, percentile, warm_up
from bench.jobs.systems import JOB_NAME, Ours, sql

# --- seeding ------------------------------------------------------------------------------------

_HISTORY = """
WITH jobs AS (
    INSERT INTO jobs_job (name, queue, payload, state, attempts, max_attempts, timeout,
        trace_id, subject, created_at, run_at, dispatched_at, started_at, finished_at, worker,
        result, last_error)
    SELECT %(name)s, %(queue)s, jsonb_build_object('n', g - 1), 'succeeded', 1, %(max_attempts)s,
        %(timeout)s, '', '', t, t, t + interval '3 ms', t + interval '6 ms', t + interval '7 ms',
        %(host)s || ':' || (1000 + mod(g, 2)), '{}'::jsonb, ''
    FROM (SELECT g, %(end)s::timestamptz - %(span)s * (1 - g::float8 / %(n)s) AS t
          FROM generate_series(1, %(n)s) AS g) AS s
    RETURNING id, created_at, started_at, finished_at, worker
)
INSERT INTO jobs_jobevent (job_id, state, attempt, at, worker, error, note)
SELECT id, e.state, e.attempt, e.at, e.worker, '', '' FROM jobs, LATERAL (VALUES
    ('queued', 0, created_at, ''), ('running', 1, started_at, worker),
    ('succeeded', 1, finished_at, worker)) AS e(state, attempt, at, worker)
"""
CHUNK = 1_000_000  # history rows per statement


def job_fields() -> dict:
    """The columns `enqueue()` fills from the benchmark's job type."""
    from bimride.jobs.engine import registry

    job_type = registry.get(JOB_NAME)
    return {
        "name": JOB_NAME,
        "queue": job_type.queue,
        "max_attempts": job_type.retry.max_attempts,
        "timeout": job_type.timeout,
    }


def seed_history(n: int, *, end, span) -> None:
    """Store `n` jobs that succeeded, finished evenly over `span` up to `end`, as a real run
    leaves them: the job row and its queued, running and succeeded events."""
    for start in range(0, n, CHUNK):
        k = min(CHUNK, n - start)
        # each chunk covers its share of the span, so the rows are in time order as in life
        chunk_end = end - span * (1 - (start + k) / n)
        params = {**job_fields(), "n": k, "end": chunk_end, "span": span * k / n, "host": "bench"}
        sql(_HISTORY, params)


def vacuum() -> None:
    """What autovacuum does in time: mark the space of deleted rows free, update statistics."""
    sql("VACUUM (ANALYZE) jobs_job, jobs_jobevent")


_BACKLOG = """
rows AS (
    INSERT INTO jobs_job (name, queue, payload, state, attempts, max_attempts, timeout,
        trace_id, subject, created_at, run_at, dispatched_at, worker, last_error)
    SELECT %(name)s, %(queue)s, jsonb_build_object('n', g - 1), 'queued', 0, %(max_attempts)s,
        %(timeout)s, '', '', t, t, t, '', ''
    FROM (SELECT g, clock_timestamp() AS t FROM generate_series(1, %(n)s) AS g) AS s
    RETURNING id, queue, name, timeout, run_at, priority, created_at
), events AS (
    INSERT INTO jobs_jobevent (job_id, state, attempt, at, worker, error, note)
    SELECT id, 'queued', 0, created_at, '', '', '' FROM rows
)
"""


def seed_backlog(n: int) -> int:
    """Write `n` due jobs as `enqueue()` does (job row, queued event, broker row), in one
    statement. Returns the first job's id."""
    from bimride.jobs.engine import broker

    return min(job_id for job_id, _ in sql(broker.pushing(_BACKLOG), {**job_fields(), "n": n}))


def next_id() -> int:
    return sql("SELECT coalesce(max(id), 0) + 1 FROM jobs_job")[0][0]


def drop_from(first_id: int) -> None:
    """Take away the jobs the benchmark added from `first_id` on, with their broker rows."""
    sql(
        "DELETE FROM django_q_ormq WHERE CASE WHEN payload LIKE '{%%'"
        " THEN (payload::jsonb ->> 'job')::bigint >= %s END",
        [first_id],
    )
    sql("DELETE FROM jobs_jobevent WHERE job_id >= %s", [first_id])
    sql("DELETE FROM jobs_job WHERE id >= %s", [first_id])


# --- the job path -------------------------------------------------------------------------------


def enqueue_ms(n: int) -> dict:
    """Enqueue `n` jobs one transaction each, as a request does; the median and p95."""
    system, first = Ours(), next_id()
    for i in range(50):  # warm: connection, imports, plan caches
        system.request_enqueue(i)
    times = []
    for i in range(n):
        t = time.perf_counter()
        system.request_enqueue(i)
        times.append((time.perf_counter() - t) * 1000)
    drop_from(first)
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95)}


def drain(n: int, cap: float = 120.0) -> dict:
    """Seed `n` due jobs, start 2 workers, time until `n` of them finished."""
    system = Ours()
    first = seed_backlog(n) if n else next_id()
    sql("ANALYZE jobs_job")
    before = system.counters()
    t0 = time.time()
    service = system.start()
    try:
        end = time.monotonic() + cap
        while time.monotonic() < end and service.alive():
            if finished_since(first) >= n:
                break
            time.sleep(0.1)
        seconds = time.time() - t0
    finally:
        service.stop()
    done = min(finished_since(first), n)
    work = per_job(before, system.counters(), done)
    drop_from(first)
    return {"jobs_s": done / seconds, "done": done, "n": n, "s": seconds, **work}


def finished_since(first_id: int) -> int:
    return sql("SELECT count(*) FROM jobs_job WHERE id >= %s AND state = 'succeeded'", [first_id])[
        0
    ][0]


def drain_from_backlog(n: int, cap: float = 120.0) -> dict:
    """With a backlog stored, time 2 workers finishing its next `n` jobs (counted along the
    index of finish times, so counting does not read the backlog)."""
    system = Ours()
    since = sql("SELECT clock_timestamp()")[0][0]
    count = "SELECT count(*) FROM jobs_job WHERE finished_at >= %s"
    t0 = time.time()
    service = system.start()
    try:
        end = time.monotonic() + cap
        while time.monotonic() < end and sql(count, [since])[0][0] < n:
            time.sleep(0.1)
        seconds = time.time() - t0
    finally:
        service.stop()
    done = min(sql(count, [since])[0][0], n)
    return {"jobs_s": done / seconds, "done": done, "n": n, "s": seconds}


def pickup(n: int) -> dict:
    """Idle workers: enqueue → start of `n` jobs sent one by one; p50 and p95."""
    system, first = Ours(), next_id()
    service = system.start()
    try:
        warm_up(system)
        result = idle_batch(system, n, wait=n * GAP + 30)
    finally:
        service.stop()
    drop_from(first)
    return result


# --- what ops staff and Prometheus read -------------------------------------------------------


class Reader:
    """A signed-in staff browser (Django's test client, in this process: the view's own time,
    without HTTP) and the ids the pages are read for."""

    def __init__(self):
        from django.contrib.auth import get_user_model
        from django.test import Client

        from rides.models import Ride, Rider

        user_model = get_user_model()
        staff, _ = user_model.objects.get_or_create(
            username="bench-staff@bench.example",
            defaults={"is_staff": True, "is_superuser": True, "email": "bench-staff@bench.example"},
        )
        rider_user, _ = user_model.objects.get_or_create(username="bench-rider@bench.example")
        rider, _ = Rider.objects.get_or_create(user=rider_user, defaults={"name": "Bench rider"})
        self.ride = Ride.objects.filter(rider=rider).first() or Ride.objects.create(
            rider=rider,
            pickup_lat=52.5,
            pickup_lng=13.4,
            dropoff_lat=52.52,
            dropoff_lng=13.41,
            estimated_fare=1000,
            currency="usd",
        )
        self.client = Client()
        self.client.force_login(staff)

    def pages(self) -> dict[str, str]:
        """Each page or endpoint measured, by label. The job read is the ride's newest, given
        the ride's subject and an idempotency key as a real one has."""
        job_id = self.ride_jobs()
        return {
            "admin: job list, first page": "/admin/jobs/job/",
            "admin: job list, state filter (succeeded)": "/admin/jobs/job/?state__exact=succeeded",
            "admin: job list, state filter (dead)": "/admin/jobs/job/?state__exact=dead",
            "admin: job list, search by id": f"/admin/jobs/job/?q={job_id}",
            "admin: job list, search by idempotency key": "/admin/jobs/job/?q=bench-ride:1",
            "admin: queue overview": "/admin/jobs/job/dashboard/",
            "admin: a job with its audit trail": f"/admin/jobs/job/{job_id}/change/",
            "admin: dead letters": "/admin/jobs/deadletter/",
            "GET /api/ops/queues": "/api/ops/queues",
            "GET /metrics": "/metrics",
            "GET /api/rides/{id}": f"/api/rides/{self.ride.pk}",
        }

    def ride_jobs(self) -> int:
        """The ride's six jobs (written once, kept newest), one with an idempotency key."""
        subject = f"ride:{self.ride.pk}"
        found = sql("SELECT max(id) FROM jobs_job WHERE subject = %s", [subject])[0][0]
        if found:
            return found
        sql(
            "INSERT INTO jobs_job (name, queue, payload, state, attempts, max_attempts, timeout,"
            " idempotency_key, trace_id, subject, created_at, run_at, worker, last_error)"
            " SELECT %s, 'default', '{}', 'succeeded', 1, 5, 60,"
            " CASE WHEN g = 1 THEN 'bench-ride:1' END, 'bench-trace', %s, now(), now(), '', ''"
            " FROM generate_series(1, 6) g",
            [JOB_NAME, subject],
        )
        job_id = sql("SELECT max(id) FROM jobs_job WHERE subject = %s", [subject])[0][0]
        sql(
            "INSERT INTO jobs_jobevent (job_id, state, attempt, at, worker, error, note)"
            " SELECT %s, s, 1, now(), '', '', '' FROM unnest(ARRAY['queued', 'running',"
            " 'succeeded']) s",
            [job_id],
        )
        return job_id

    def time_ms(self, path: str) -> float:
        t = time.perf_counter()
        response = self.client.get(path, secure=True)
        ms = (time.perf_counter() - t) * 1000
        if response.status_code != 200:
            raise SystemExit(f"bench: {path} answered {response.status_code}")
        return ms

    def measure(self, repeats: int) -> dict[str, float]:
        """Each page's median over `repeats` reads, after one to warm it."""
        from django.core.management import call_command

        result = {}
        for label, path in self.pages().items():
            self.time_ms(path)
            result[label] = statistics.median(self.time_ms(path) for _ in range(repeats))
        times = []
        for _ in range(repeats + 1):
            t = time.perf_counter()
            call_command("jobs", "stats", stdout=StringIO())
            times.append((time.perf_counter() - t) * 1000)
        result["manage.py jobs stats"] = statistics.median(times[1:])
        return result


# --- retention ----------------------------------------------------------------------------------


def table_sizes() -> dict[str, int]:
    """Bytes of each ledger table and of all its indexes."""
    sizes = {}
    for table in ("jobs_job", "jobs_jobevent"):
        heap, indexes = sql(
            "SELECT pg_table_size(%s::regclass), pg_indexes_size(%s::regclass)", [table, table]
        )[0]
        sizes[f"{table} table"] = heap
        sizes[f"{table} indexes"] = indexes
    return sizes


class PruneRun(threading.Thread):
    """The pruner deleting the jobs finished before `before`, in a thread of its own."""

    def __init__(self, before, duty: float | None = None):
        super().__init__(daemon=True)
        self.before, self.duty = before, duty
        self.counts, self.seconds, self.error = None, None, None

    def run(self) -> None:
        from django.test import override_settings

        from bimride.jobs.engine.pruner import prune_jobs

        duty = settings.JOB_PRUNE_DUTY if self.duty is None else self.duty
        t = time.monotonic()
        try:
            with override_settings(JOB_PRUNE_DUTY=duty):
                self.counts, _ = prune_jobs(before=self.before)
        except Exception as error:  # noqa: BLE001 - reported by the main thread
            self.error = error
        finally:
            self.seconds = time.monotonic() - t
            connection.close()
