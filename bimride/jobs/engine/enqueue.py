"""Enqueueing: one statement writes the job, its audit event and its broker row, in the caller's
transaction. The job is pushed when, and only if, that transaction commits (a NOTIFY then wakes
its queue); a rollback leaves no trace of it.
"""

import functools
import logging
from datetime import datetime, timedelta

from django.db import connection
from django.utils import timezone

from bimride.jobs.engine import broker, registry
from bimride.jobs.engine.events import Event
from bimride.jobs.models import Job, JobEvent
from bimride.tracing import current_trace_id

logger = logging.getLogger(__name__)


def enqueue(
    name: str,
    payload: dict | None = None,
    *,
    delay: timedelta | None = None,
    run_at: datetime | None = None,
    idempotency_key: str | None = None,
    retry_of: Job | None = None,
    queue: str | None = None,
    priority: int | None = None,
    backend: str = "",
) -> Job:
    """Create job `name` due now (or at `run_at`, or after `delay`) and return it.

    Raises JobPayloadError for a payload that does not fit the job's schema (nothing stored).
    With an `idempotency_key` that exists, returns the existing job instead, also when two
    transactions race with the same key. `queue` (by default the job type's), `priority` and
    `backend` (a task's TASKS alias) are for tasks of Django's Tasks API and their retries.
    """
    fields = {"queue": queue} if queue else {}
    if priority is not None:
        fields["priority"] = priority
    job = _build(
        name,
        payload,
        idempotency_key=idempotency_key,
        retry_of=retry_of,
        backend=backend,
        **fields,
    )
    if run_at or delay:
        job.run_at = job.run_after = run_at or job.created_at + delay
    if not _insert([job]):  # the key exists (or a transaction racing with it committed it)
        return Job.objects.get(idempotency_key=idempotency_key)
    return job


def _build(name: str, payload: dict | None, **fields) -> Job:
    """Job `name` due now, unsaved; JobPayloadError for a payload that does not fit."""
    job_type = registry.get(name)
    data = job_type.validate(payload if payload is not None else {})
    now = timezone.now()
    defaults = {
        "queue": job_type.queue,
        "max_attempts": job_type.retry.max_attempts,
        "timeout": job_type.timeout,
        "trace_id": current_trace_id(),
        "subject": job_type.subject_of(data),
        "concurrency_key": job_type.concurrency_key_of(data),
        "priority": job_type.priority,
    }
    return Job(
        name=name,
        payload=data,
        created_at=now,
        run_at=now,
        dispatched_at=now,
        **(defaults | fields),
    )


_FIELDS = [field for field in Job._meta.concrete_fields if not field.primary_key]


@functools.cache
def _insert_statement(count: int) -> str:
    """Insert `count` jobs, their "queued" audit events and their broker rows."""
    row = f"({', '.join(['%s'] * len(_FIELDS))})"
    return broker.pushing(
        f"rows AS (INSERT INTO {Job._meta.db_table} ({', '.join(f.column for f in _FIELDS)})"
        f" VALUES {', '.join([row] * count)} ON CONFLICT (idempotency_key) DO NOTHING"
        f" RETURNING id, queue, name, timeout, run_at, priority, created_at),"
        f" audit AS (INSERT INTO {JobEvent._meta.db_table}"
        f" (job_id, state, attempt, at, worker, error, note)"
        f" SELECT id, %s, 0, created_at, '', '', '' FROM rows)"
    )


def _insert(jobs: list[Job]) -> bool:
    """Write `jobs`, their "queued" audit events and their broker rows in one statement. A job
    with an idempotency key goes alone: False then means the key is taken (nothing written). A
    transaction racing with the same key waits for the other to commit or roll back, as a
    unique index makes it."""
    values = [
        field.get_db_prep_save(field.pre_save(job, True), connection)
        for job in jobs
        for field in _FIELDS
    ]
    with connection.cursor() as cursor:
        cursor.execute(_insert_statement(len(jobs)), [*values, Job.State.QUEUED])
        ids = [row[0] for row in cursor.fetchall()]
    if len(ids) < len(jobs):
        return False
    for job, pk in zip(jobs, ids, strict=True):  # in the order of VALUES, as bulk_create relies
        job.pk, job._state.adding, job._state.db = pk, False, connection.alias
    return True


def dispatch(job: Job) -> None:
    """Push one job to its queue again (the relay; a retry, inside its transaction)."""
    broker.push([job])


def publish(event: Event) -> list[Job]:
    """Enqueue one job per subscriber of `event`, a declared event whose payload was checked
    when it was made (`RideCompleted(ride_id=...)`), in the caller's transaction; each job
    retries and dead-letters on its own."""
    if not isinstance(event, Event):
        raise TypeError(f"publish() takes a declared event (bimride.jobs.Event), not {event!r}")
    payload = event.payload()
    jobs = [_build(job_type.name, payload) for job_type in registry.subscribers(event.name)]
    if jobs:
        _insert(jobs)  # one statement for them all
    return jobs
