"""Retention: finished jobs with their audit rows, old schedule runs and django-q2 task rows.

A job goes once it finished before the cutoff (JOB_RETENTION ago) and is final: succeeded,
cancelled, or dead with its dead letter retried or discarded. A live job (queued, retrying,
running) and an open dead letter's job are never touched, however old, nor their audit rows:
an event goes only with its job.

Jobs go oldest finished first, JOB_PRUNE_BATCH at a time, each batch one short transaction that
deletes the jobs, their audit rows and dead letters and unlinks whatever else points at them, by
primary and foreign keys (no row is loaded into Python). The next batch is read after the last
one's (finished_at, id), so it never walks again over what was deleted. Between batches the
pruner rests, so that deleting takes at most JOB_PRUNE_DUTY of its time and the workers keep
their pace; what it frees, autovacuum hands to the rows written next (the tables' settings are
in migration 0006), so the tables stop growing once retention runs.
"""

import time
from datetime import UTC, datetime

from django.conf import settings
from django.db import connection, models, transaction
from django.utils import timezone

from bimride.jobs.engine import broker, metrics
from bimride.jobs.engine.registry import JobContext
from bimride.jobs.models import Job, JobEvent, ScheduleRun

_FINAL = """(j.state IN ('succeeded', 'cancelled') OR j.state = 'dead' AND EXISTS (
    SELECT 1 FROM jobs_deadletter d
    WHERE d.job_id = j.id AND d.resolution IN ('retried', 'discarded')))"""
_BATCH = f"""SELECT j.id, j.finished_at FROM jobs_job j
WHERE j.finished_at < %(cutoff)s AND j.finished_at >= %(after_at)s
  AND (j.finished_at, j.id) > (%(after_at)s, %(after_id)s) AND {_FINAL}
ORDER BY j.finished_at, j.id LIMIT %(limit)s"""
_DELETE = f"DELETE FROM jobs_job j WHERE j.id = ANY(%s) AND {_FINAL} RETURNING j.id"


def prune(ctx: JobContext | None = None, *, budget: float | None = None) -> dict:
    """Delete what is past JOB_RETENTION, for about `budget` seconds; returns the counts
    deleted and `more`: whether it stopped with finished jobs past retention possibly left."""
    cutoff = timezone.now() - settings.JOB_RETENTION
    counts, more = prune_jobs(before=cutoff, ctx=ctx, budget=budget)
    counts["schedule_runs"] = ScheduleRun.objects.filter(intended_at__lt=cutoff).delete()[0]
    counts["task_results"] = broker.prune_task_results(before=cutoff)
    for kind, n in counts.items():
        metrics.PRUNED.labels(kind).inc(n)
    return {**counts, "more": more}


def prune_jobs(
    *, before: datetime, ctx: JobContext | None = None, budget: float | None = None
) -> tuple[dict, bool]:
    """Delete the final jobs that finished before `before`, with their audit rows and dead
    letters, batch by batch; returns the counts and whether it stopped because `budget` seconds
    were spent (jobs may be left), after at least one batch."""
    counts = {"jobs": 0, "events": 0}
    after_at, after_id = datetime(1, 1, 2, tzinfo=UTC), 0
    started = time.monotonic()
    while True:
        t = time.monotonic()
        with connection.cursor() as cursor:
            params = {"cutoff": before, "after_at": after_at, "after_id": after_id}
            cursor.execute(_BATCH, {**params, "limit": settings.JOB_PRUNE_BATCH})
            rows = cursor.fetchall()
        if not rows:
            return counts, False
        after_id, after_at = rows[-1]
        with transaction.atomic():
            jobs, events = _delete([job_id for job_id, _ in rows])
            counts["jobs"] += jobs
            counts["events"] += events
            if ctx is not None:
                ctx.report(done=counts["jobs"])
        if budget is not None and time.monotonic() - started >= budget:
            return counts, True
        _rest(time.monotonic() - t)


def _delete(ids: list[int]) -> tuple[int, int]:
    """Delete these jobs if they are still final, and what hangs on them: CASCADE relations
    are deleted, SET_NULL ones unlinked. Call inside a transaction."""
    with connection.cursor() as cursor:
        cursor.execute(_DELETE, [ids])
        gone = [row[0] for row in cursor.fetchall()]
        events = 0
        for relation in _relations():
            table = connection.ops.quote_name(relation.related_model._meta.db_table)
            column = connection.ops.quote_name(relation.field.column)
            if relation.on_delete is models.CASCADE:
                cursor.execute(f"DELETE FROM {table} WHERE {column} = ANY(%s)", [gone])
                if relation.related_model is JobEvent:
                    events = cursor.rowcount
            elif relation.on_delete is models.SET_NULL:
                cursor.execute(
                    f"UPDATE {table} SET {column} = NULL WHERE {column} = ANY(%s)", [gone]
                )
            else:
                raise NotImplementedError(f"pruning jobs under {relation}: {relation.on_delete}")
    return len(gone), events


def _relations():
    """Every foreign key to Job, hidden ones (related_name="+") included."""
    return [
        f
        for f in Job._meta.get_fields(include_hidden=True)
        if (f.one_to_many or f.one_to_one) and f.auto_created and not f.concrete
    ]


def _rest(worked: float) -> None:
    """Sleep so that `worked` is at most JOB_PRUNE_DUTY of the time."""
    duty = settings.JOB_PRUNE_DUTY
    if 0 < duty < 1:
        time.sleep(worked * (1 - duty) / duty)
