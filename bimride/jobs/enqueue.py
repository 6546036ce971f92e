"""Enqueueing: the Job row is written in the caller's transaction and pushed after it commits.

A rollback leaves no job. A process that dies between the commit and the push leaves a job
with no `dispatched_at`, which the relay pushes within a minute.
"""

import logging
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.utils import timezone

from bimride.jobs import broker, registry
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
) -> Job:
    """Create job `name` due now (or at `run_at`, or after `delay`) and return it.

    Raises JobPayloadError for a payload that does not fit the job's schema (nothing stored).
    With an `idempotency_key` that exists, returns the existing job instead, also when two
    transactions race with the same key.
    """
    job_type = registry.get(name)
    data = job_type.validate(payload if payload is not None else {})
    now = timezone.now()
    job = Job(
        name=name,
        queue=job_type.queue,
        payload=data,
        max_attempts=job_type.retry.max_attempts,
        timeout=job_type.timeout,
        idempotency_key=idempotency_key,
        trace_id=current_trace_id(),
        subject=job_type.subject_of(data),
        created_at=now,
        run_at=run_at or (now + delay if delay else now),
        retry_of=retry_of,
    )
    if idempotency_key:
        try:
            with transaction.atomic():
                job.save(force_insert=True)
        except IntegrityError:
            return Job.objects.get(idempotency_key=idempotency_key)
    else:
        job.save(force_insert=True)
    JobEvent.objects.create(job=job, state=Job.State.QUEUED, at=now)

    def push_committed_job() -> None:  # a named function: Django logs a failed robust callback
        dispatch(job)

    transaction.on_commit(push_committed_job, robust=True)
    return job


def dispatch(job: Job) -> None:
    """Push a committed job to its queue (also used by the relay)."""
    broker.push(
        job_id=job.pk, name=job.name, queue=job.queue, timeout=job.timeout, run_at=job.run_at
    )


def publish(event: str, **payload) -> list[Job]:
    """Enqueue one job per subscriber of `event`; each retries and dead-letters on its own."""
    return [enqueue(job_type.name, payload) for job_type in registry.subscribers(event)]
