"""Job types for the tests, loaded in-process by conftest and in workers via JOB_EXTRA_MODULES.

`tests.effect` inserts one row keyed by its job id into `test_effects` in the job's own
transaction, so a test can count effects: exactly one per succeeded job, none for a failure.
"""

import dataclasses
import os
import signal
import sys
import time

from django.db import connection
from rest_framework import serializers

from bimride.errors import PermanentError
from bimride.jobs.registry import JobContext, job
from bimride.jobs.retry import RetryPolicy

EFFECTS_TABLE = "test_effects"


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


@job("tests.listener_records", payload=EffectPayload, timeout=10, on="tests.happened")
def listener_records(payload: dict, ctx: JobContext) -> dict:
    """A subscriber that succeeds, inserting one effect."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt) VALUES (%s, %s)",
            [ctx.job_id, ctx.attempt],
        )
    return {}


@job("tests.listener_refuses", payload=EffectPayload, timeout=10, on="tests.happened")
def listener_refuses(payload: dict, ctx: JobContext) -> dict:
    """A subscriber that fails for good."""
    raise PermanentError("This listener refuses every event.")


@job("tests.report_q2compat", payload=EffectPayload, timeout=10)
def report_q2compat(payload: dict, ctx: JobContext) -> dict:
    """Report, from inside a worker, which of q2compat's replacements its process runs with: the
    patched attributes, and the timer and task queue django-q2's worker loop was handed."""
    from django_q.worker import worker

    from bimride.jobs import q2compat, shutdown

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
