"""Job types for the tests, loaded in-process by conftest and in workers via JOB_EXTRA_MODULES.

`tests.effect` inserts one row keyed by its job id into `test_effects` in the job's own
transaction, so a test can count effects: exactly one per succeeded job, none for a failure.
"""

import dataclasses
import os
import signal
import sys
import threading
import time

from django.db import connection
from rest_framework import serializers

from bimride.errors import PermanentError
from bimride.jobs import Event
from bimride.jobs.engine.registry import JobContext, job
from bimride.jobs.engine.retry import RetryPolicy

EFFECTS_TABLE = "test_effects"


class Happened(Event, name="tests.happened"):
    """Something the tests publish, to two subscribers."""

    n: int


class EffectPayload(serializers.Serializer):
    n = serializers.IntegerField(min_value=0)
    sleep = serializers.FloatField(min_value=0, max_value=30, required=False)
    fail_times = serializers.IntegerField(min_value=0, required=False)


def create_effects_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE}"
            " (job_id bigint NOT NULL, attempt int NOT NULL, at timestamptz DEFAULT now())"
        )
        cursor.execute(f"TRUNCATE {EFFECTS_TABLE}")


def effects() -> list[tuple[int, int]]:
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT job_id, attempt FROM {EFFECTS_TABLE} ORDER BY job_id")
        return cursor.fetchall()


for queue in ("critical", "default", "bulk"):

    @job(
        f"tests.effect_{queue}",
        queue=queue,
        payload=EffectPayload,
        timeout=10,
        retry=RetryPolicy(max_attempts=3, initial=1.0, max_delay=2.0),
    )
    def effect(payload: dict, ctx: JobContext) -> dict:
        """Sleep, fail the first `fail_times` attempts, else insert one effect row."""
        time.sleep(payload.get("sleep", 0))
        if ctx.attempt <= payload.get("fail_times", 0):
            raise RuntimeError(f"planned failure of attempt {ctx.attempt}")
        with connection.cursor() as cursor:
            cursor.execute(
                f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt) VALUES (%s, %s)",
                [ctx.job_id, ctx.attempt],
            )
        return {"n": payload["n"], "attempt": ctx.attempt}


@job("tests.noop", timeout=10)
def noop(payload: dict, ctx: JobContext) -> dict:
    """Do nothing: what a job run costs beyond its handler's own work."""
    return {}


@job("tests.declined", payload=EffectPayload, timeout=10)
def declined(payload: dict, ctx: JobContext) -> dict:
    raise PermanentError("Your card was declined.", code="card_declined")


@job("tests.slow", payload=EffectPayload, timeout=1, retry=RetryPolicy(max_attempts=2, initial=0.1))
def slow(payload: dict, ctx: JobContext) -> dict:
    time.sleep(payload.get("sleep", 5))
    return {}


@job("tests.sleepy", payload=EffectPayload, timeout=3)
def sleepy(payload: dict, ctx: JobContext) -> dict:
    """Sleep on the first attempt only (long enough to be killed), then insert one effect."""
    if ctx.attempt == 1:
        time.sleep(payload.get("sleep", 2))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt) VALUES (%s, %s)",
            [ctx.job_id, ctx.attempt],
        )
    return {"attempt": ctx.attempt}


@job("tests.listener_records", payload=EffectPayload, timeout=10, on=Happened)
def listener_records(payload: dict, ctx: JobContext) -> dict:
    """A subscriber that succeeds, inserting one effect."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt) VALUES (%s, %s)",
            [ctx.job_id, ctx.attempt],
        )
    return {}


@job("tests.listener_refuses", payload=EffectPayload, timeout=10, on=Happened)
def listener_refuses(payload: dict, ctx: JobContext) -> dict:
    """A subscriber that fails for good."""
    raise PermanentError("This listener refuses every event.")


@job("tests.report_q2compat", payload=EffectPayload, timeout=10)
def report_q2compat(payload: dict, ctx: JobContext) -> dict:
    """Report, from inside a worker, which of q2compat's replacements its process runs with: the
    patched attributes, and the timer and task queue django-q2's worker loop was handed."""
    from django_q.worker import worker

    from bimride.jobs.engine import q2compat, shutdown

    frame = sys._getframe()
    while frame is not None and frame.f_code is not worker.__code__:
        frame = frame.f_back
    loop = frame.f_locals if frame is not None else {}
    get = next(r for o, n, r in q2compat.PATCHES if (o, n) == (q2compat.ClusterQueue, "get"))
    task_queue_get = getattr(loop.get("task_queue"), "get", None)
    return {
        "pid": os.getpid(),
        "in_worker_loop": frame is not None,
        "timer": type(loop.get("timer")).__name__,
        "task_queue_get_replaced": getattr(task_queue_get, "__func__", None) is get,
        "obeys_sigterm": signal.getsignal(signal.SIGTERM) is shutdown._stop,
        "obeys_sigint": signal.getsignal(signal.SIGINT) is shutdown._stop,
        "replaced": {
            f"{getattr(owner, '__qualname__', owner.__name__)}.{name}": (
                getattr(owner, name) is replacement
            )
            for owner, name, replacement in q2compat.PATCHES
        },
    }


@job("tests.echo", timeout=10)
def echo(payload: dict, ctx: JobContext) -> dict:
    """Answer with the payload and the context it got."""
    return {"payload": payload, "ctx": dataclasses.asdict(ctx)}


@job("tests.show_synchronous_commit", payload=EffectPayload, timeout=10)
def show_synchronous_commit(payload: dict, ctx: JobContext) -> dict:
    """Answer how the job's own transaction commits (`SHOW synchronous_commit` inside it)."""
    with connection.cursor() as cursor:
        cursor.execute("SHOW synchronous_commit")
        return {"synchronous_commit": cursor.fetchone()[0]}


# --- many attempts in flight per worker process (bimride.jobs.engine.inflight) ---------------
SPANS_TABLE = "test_spans"


def create_spans_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {SPANS_TABLE} (job_id bigint NOT NULL, attempt int,"
            " started double precision, ended double precision, pid int, thread text,"
            " logged_job_id text)"
        )
        cursor.execute(f"TRUNCATE {SPANS_TABLE}")


def spans() -> list[dict]:
    """What each finished attempt of the span-recording jobs saw, by job id."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT job_id, attempt, started, ended, pid, thread, logged_job_id"
            f" FROM {SPANS_TABLE} ORDER BY job_id, attempt"
        )
        names = [c.name for c in cursor.description]
        return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _span(ctx: JobContext, seconds: float) -> dict:
    """Wait `seconds` in Python-level steps (as a provider call would wait on its socket), then
    record the attempt's span, process, thread and the job id its log lines carry."""
    from bimride.db import provider_call
    from bimride.tracing import _context

    started = time.time()
    provider_call("a test provider")  # a waiting thread holds no connection
    while time.time() < started + seconds:
        time.sleep(0.02)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {SPANS_TABLE} VALUES (%s, %s, %s, %s, %s, %s, %s)",
            [
                ctx.job_id,
                ctx.attempt,
                started,
                time.time(),
                os.getpid(),
                threading.current_thread().name,
                str(_context.get({}).get("job_id")),
            ],
        )
    return {"pid": os.getpid()}


@job("tests.span", payload=EffectPayload, timeout=10, atomic=False)
def span(payload: dict, ctx: JobContext) -> dict:
    return _span(ctx, payload.get("sleep", 1))


class KeyedPayload(EffectPayload):
    key = serializers.IntegerField(min_value=0)


@job(
    "tests.keyed_span",
    payload=KeyedPayload,
    timeout=10,
    atomic=False,
    concurrency_key="key:{key}",
)
def keyed_span(payload: dict, ctx: JobContext) -> dict:
    """A span; the jobs of one `key` run one at a time, oldest first."""
    return _span(ctx, payload.get("sleep", 0.3))


@job("tests.spin", payload=EffectPayload, timeout=1, retry=RetryPolicy(max_attempts=2, initial=0.1))
def spin(payload: dict, ctx: JobContext) -> dict:
    """Busy in Python for `sleep` seconds: a timeout interrupts it."""
    until = time.time() + payload.get("sleep", 5)
    while time.time() < until:
        time.sleep(0.01)
    return {}


@job("tests.snoozer", payload=EffectPayload, timeout=10, max_snoozes=3)
def snoozer(payload: dict, ctx: JobContext) -> dict:
    """Snooze (0.1 s) until the job has snoozed `n` times, then succeed."""
    from bimride.jobs.models import Job

    snoozed = Job.objects.values_list("snoozes", flat=True).get(pk=ctx.job_id)
    if snoozed < payload["n"]:
        ctx.snooze(0.1, f"waiting ({snoozed + 1} of {payload['n']})")
    return {"snoozed": snoozed}
