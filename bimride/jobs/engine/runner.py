"""Running one attempt of a job: claim, run the handler, record the outcome.

django-q2 delivers job ids at least once; the claim makes the rest safe. A job is claimed by a
single UPDATE that only matches a due queued/retrying job or a running job whose lease expired
(its worker died), so a duplicate delivery of a running or finished job is a no-op. A handler
runs, by default, in one transaction with the record of its success: its database effects and
"succeeded" commit together or not at all.
"""

import json
import logging
import os
import signal
import threading
import time
import traceback
from contextlib import contextmanager
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bimride.db import patiently
from bimride.errors import BimRideError
from bimride.jobs.engine import inflight, metrics, registry, shutdown
from bimride.jobs.engine.broker import QUEUE_TABLE, WorkerTimeout
from bimride.jobs.engine.enqueue import dispatch
from bimride.jobs.engine.errors import (
    JobPayloadError,
    LeaseLost,
    Snooze,
    SnoozedTooOften,
    UnknownJob,
    WorkerLost,
)
from bimride.jobs.engine.registry import JobContext, JobType
from bimride.jobs.models import DeadLetter, Job, JobEvent
from bimride.tracing import log_context

logger = logging.getLogger(__name__)

WORKER = f"{settings.JOB_WORKER_HOST}:{os.getpid()}"  # the ledger's `worker`
KEY_WAIT = (0.25, 5.0)  # seconds a job waits for an earlier one of its key: at least, at most


PERMANENT = (BimRideError, UnknownJob, JobPayloadError, SnoozedTooOften)

_JOB = Job._meta.db_table
_EVENT = JobEvent._meta.db_table
# What an attempt reads of its job, returned by the claim (the rest is never read meanwhile), in
# the model's field order, as Model.from_db takes them.
_READ = {"id", "name", "queue", "payload", "attempts", "max_attempts", "timeout", "trace_id"}
_READ |= {"idempotency_key", "progress", "run_at", "started_at", "snoozes", "concurrency_key"}
_CLAIMED = [f.column for f in Job._meta.concrete_fields if f.column in _READ]
# The claim also deletes the broker row the job was taken from (when a pusher took it): once
# claimed, a job whose worker dies is rescued by its lease (the relay), not by the broker.
_CLAIM = f"""
WITH taken AS (DELETE FROM {QUEUE_TABLE} WHERE id = %(broker_row)s), claimed AS (
    UPDATE {_JOB} SET state = 'running', attempts = attempts + 1, started_at = clock_timestamp(),
        worker = %(worker)s, next_attempt_at = NULL,
        lease_expires_at = clock_timestamp() + make_interval(secs => timeout + %(grace)s)
    WHERE id = %(id)s AND (
        (state IN ('queued', 'retrying') AND run_at <= clock_timestamp() + interval '1 second')
        OR (state = 'running' AND lease_expires_at < clock_timestamp()))
      AND (concurrency_key = '' OR NOT EXISTS (
        SELECT 1 FROM {_JOB} earlier WHERE earlier.concurrency_key = {_JOB}.concurrency_key
        AND earlier.id < {_JOB}.id AND earlier.state IN ('queued', 'retrying', 'running')))
    RETURNING {", ".join(_CLAIMED)}
), audit AS (
    INSERT INTO {_EVENT} (job_id, state, attempt, at, worker, error, note)
    SELECT id, 'running', attempts, started_at, %(worker)s, '', '' FROM claimed
)
SELECT {", ".join(f"claimed.{column}" for column in _CLAIMED)} FROM claimed{{commit}}
"""
_SUCCEED = f"""
WITH done AS (
    UPDATE {_JOB} SET state = 'succeeded', result = %(result)s::jsonb,
        finished_at = clock_timestamp(), lease_expires_at = NULL, last_error = ''
    WHERE id = %(id)s AND state = 'running' AND attempts = %(attempt)s
    RETURNING id, attempts, worker
)
INSERT INTO {_EVENT} (job_id, state, attempt, at, worker, error, note)
SELECT id, 'succeeded', attempts, clock_timestamp(), worker, '', '' FROM done{{commit}}
RETURNING id
"""
# Behind a transaction-mode pooler the statement itself says how its transaction commits, as
# `SET LOCAL synchronous_commit = off` would, without a statement of its own: set_config() is
# evaluated with the rows (none claimed or done, nothing to commit but the broker row's delete).
_ASYNC_COMMIT = ", LATERAL set_config('synchronous_commit', 'off', true) AS commit_mode"


def _statement(template: str) -> str:
    return template.format(commit=_ASYNC_COMMIT if _pooled_async_commit() else "")


def deliver(job_id: int, broker_row: int | None = None) -> None:
    """What a job's broker row asks a django-q2 worker to do: run an attempt of job `job_id`,
    in a thread of this process when its queue's concurrency (`JOB_CONCURRENCY`) is above 1,
    right here otherwise (`bimride.jobs.engine.inflight`)."""
    queue = settings.JOB_WORKER_QUEUE
    if not settings.WORKER_PROCESS or settings.JOB_CONCURRENCY.get(queue, 1) <= 1:
        run_job(job_id, broker_row)  # also django-q2's loops run in a test or a shell
    else:
        inflight.for_queue(queue, run_job, _abandon).submit(job_id, broker_row)


def run_job(job_id: int, broker_row: int | None = None) -> None:
    """Run one attempt of job `job_id`, if it is due and nobody else runs it, deleting the
    broker row `broker_row` it was taken from either way. Never raises for a handler's failure:
    that is recorded on the job (retrying or dead)."""
    job = patiently(_claim, job_id, broker_row, patience=settings.JOB_DB_OUTAGE_PATIENCE)
    if job is None:
        patiently(_not_claimed, job_id, patience=settings.JOB_DB_OUTAGE_PATIENCE)
        return
    with log_context(
        trace_id=job.trace_id or "-",
        job_id=job.pk,
        job_name=job.name,
        attempt=job.attempts,
        queue=job.queue,
    ):
        started = time.monotonic()
        metrics.ATTEMPTS.labels(job.name, job.queue).inc()
        metrics.JOB_WAIT.labels(job.name).observe(
            max(0.0, (job.started_at - job.run_at).total_seconds())
        )
        try:
            job_type = registry.get(job.name)
            if job.attempts > job.max_attempts:  # its worker died on the last allowed attempt
                raise WorkerLost("The worker running the last attempt died.")
            _execute(job, job_type)
        except Snooze as snooze:
            state = patiently(_snooze, job, snooze, patience=settings.JOB_DB_OUTAGE_PATIENCE)
            if state == Job.State.DEAD:
                _finished(job)
        except BaseException as error:  # noqa: BLE001 - also a handler's SystemExit: recorded
            state = patiently(_fail, job, error, patience=settings.JOB_DB_OUTAGE_PATIENCE)
            if state == Job.State.DEAD:
                _finished(job)  # while handling it: the failure's log records carry exc_info
            if shutdown.requested():
                raise  # a stop signal, not the handler: the attempt is recorded, now stop
        else:
            elapsed = time.monotonic() - started
            metrics.JOB_RUN.labels(job.name).observe(elapsed)
            metrics.SUCCEEDED.labels(job.name, job.queue).inc()
            logger.info("job succeeded in %.3fs", elapsed)
            _finished(job)


def _finished(job: Job) -> None:
    """Tell the job type's `on_finish` hook (the Tasks API's `task_finished`) that the job's
    outcome is committed. A failing hook is logged: the outcome stands."""
    job_type = registry.all_types().get(job.name)
    if job_type is None or job_type.on_finish is None:
        return
    try:
        job_type.on_finish(job.pk)
    except Exception:
        logger.exception("on_finish hook of %s failed", job.name)


def _pooled_async_commit() -> bool:
    return settings.JOB_ASYNC_COMMIT and settings.DB_TRANSACTION_POOLER


def _commit_async() -> None:
    """Let the current transaction commit without waiting for its WAL flush, in a worker behind
    a transaction-mode pooler (directly connected, its session says so once: settings/database.py).
    The statement costs about 0.04 ms; the flush it saves about 0.9 ms. The claim and the record of
    success say it within their own statement (`_statement`)."""
    if _pooled_async_commit():
        with connection.cursor() as cursor:
            cursor.execute("SET LOCAL synchronous_commit = off")


def _claim(job_id: int, broker_row: int | None) -> Job | None:
    """The job, claimed for this attempt (None if it is not due or another worker runs it), in
    one statement that also records "running" and deletes its broker row."""
    params = {
        "id": job_id,
        "broker_row": broker_row,
        "worker": WORKER,
        "grace": settings.JOB_LEASE_GRACE.total_seconds(),
    }
    with connection.cursor() as cursor:
        cursor.execute(_statement(_CLAIM), params)
        row = cursor.fetchone()
    if row is None:
        return None
    fields = dict(zip(_CLAIMED, row, strict=True))
    for column in ("payload", "progress"):  # jsonb arrives as text, as JSONField reads it
        fields[column] = None if fields[column] is None else json.loads(fields[column])
    return Job.from_db(connection.alias, list(fields), list(fields.values()))


_EARLIER = f"""
SELECT earlier.state, earlier.run_at FROM {_JOB} job JOIN {_JOB} earlier
    ON earlier.concurrency_key = job.concurrency_key AND earlier.id < job.id
WHERE job.id = %s AND job.concurrency_key <> ''
    AND earlier.state IN ('queued', 'retrying', 'running')
ORDER BY earlier.id LIMIT 1
"""


@transaction.atomic
def _not_claimed(job_id: int) -> None:
    """A delivery that claimed nothing must not swallow a job that still waits, as its broker
    row is gone: the job is pushed again. One whose key an earlier job still holds waits its
    turn, due when that job is or, if it runs, a moment later; one that came before it was due
    (clock skew) keeps its time; one whose key came free since the claim looked (the earlier
    job ended meanwhile) is due at once. No attempt is used."""
    job = Job.objects.select_for_update().filter(pk=job_id, state__in=["queued", "retrying"])
    job = job.first()
    if job is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(_EARLIER, [job_id])
        earlier = cursor.fetchone()
    if earlier is not None:
        state, due = earlier
        wait = KEY_WAIT[0] if state == "running" else (due - timezone.now()).total_seconds()
        job.run_at = timezone.now() + timedelta(seconds=min(max(wait, KEY_WAIT[0]), KEY_WAIT[1]))
        job.save(update_fields=["run_at"])
        metrics.KEY_WAITS.labels(job.name).inc()
    dispatch(job)


def _context(job: Job) -> JobContext:
    return JobContext(
        job_id=job.pk,
        name=job.name,
        queue=job.queue,
        attempt=job.attempts,
        trace_id=job.trace_id,
        idempotency_key=job.idempotency_key or f"job:{job.pk}",
        progress=job.progress,
    )


@contextmanager
def _time_limit(job: Job):
    """Hold the handler to its job's timeout. In a django-q2 worker, SIGALRM raises
    WorkerTimeout, or the watchdog of the process's threads (`inflight`) does; elsewhere
    (tests, `runjob --sync`) nothing is armed. Claiming and recording stay outside the limit:
    they may wait out a DB outage."""
    in_flight = inflight.current()
    if in_flight is not None and threading.current_thread() is not threading.main_thread():
        with in_flight.deadline(job, job.timeout):
            yield
        return
    seconds = job.timeout
    armed = signal.getsignal(signal.SIGALRM) not in (signal.SIG_DFL, signal.SIG_IGN, None)
    if armed:
        signal.alarm(seconds)
    try:
        yield
    finally:
        if armed:
            signal.alarm(0)


def _execute(job: Job, job_type: JobType) -> None:
    if job_type.atomic:
        with transaction.atomic():
            _commit_async()  # first, so the handler's own statements run as they commit
            with _time_limit(job):
                result = job_type(job.payload, _context(job))
            _succeed(job, result)
    else:
        with _time_limit(job):
            result = job_type(job.payload, _context(job))
        patiently(_succeed, job, result, patience=settings.JOB_DB_OUTAGE_PATIENCE)


def _abandon(job: Job, error: BaseException) -> None:
    """Record an attempt whose thread still runs as failed with `error`: its process is about
    to end it (stuck past its timeout, or told to stop at once)."""
    with log_context(trace_id=job.trace_id or "-", job_id=job.pk, job_name=job.name):
        if patiently(_fail, job, error, patience=5) == Job.State.DEAD:
            _finished(job)


def _succeed(job: Job, result) -> None:
    encoded = json.dumps(result, default=str)
    with connection.cursor() as cursor:
        cursor.execute(
            _statement(_SUCCEED), {"id": job.pk, "attempt": job.attempts, "result": encoded}
        )
        if cursor.fetchone() is None:
            raise LeaseLost(f"job {job.pk} attempt {job.attempts} lost its lease")


def _error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def _error_fields(error: BaseException) -> dict:
    """What an audit event keeps of a failed attempt's exception."""
    return {
        "error": _error_text(error),
        "error_class": f"{type(error).__module__}.{type(error).__qualname__}",
        "traceback": "".join(traceback.format_exception(error)),
    }


@transaction.atomic
def _fail(job: Job, error: BaseException) -> str | None:
    """Schedule the next attempt with back-off, or dead-letter the job; return its new state
    (None if the job had moved on without this attempt)."""
    _commit_async()
    current = Job.objects.select_for_update().get(pk=job.pk)
    if current.state != Job.State.RUNNING or current.attempts != job.attempts:
        logger.warning("attempt ended after its job moved on: %s", _error_text(error))
        return None
    message = _error_text(error)
    now = timezone.now()
    metrics.FAILURES.labels(job.name, job.queue).inc()
    current.last_error, current.lease_expires_at = message, None
    if isinstance(error, PERMANENT) or current.attempts >= current.max_attempts:
        current.state, current.finished_at = Job.State.DEAD, now
        current.save()
        JobEvent.objects.create(
            job=current,
            state=current.state,
            attempt=current.attempts,
            worker=WORKER,
            **_error_fields(error),
        )
        _dead_letter(current, error)
        metrics.DEAD.labels(job.name, job.queue).inc()
        logger.error("job dead after %s attempt(s): %s", current.attempts, message, exc_info=error)
        return current.state
    job_type = registry.get(current.name)
    current.state = Job.State.RETRYING
    delay = timedelta(seconds=job_type.retry.delay(current.attempts))
    current.run_at = current.next_attempt_at = now + delay
    current.save()
    JobEvent.objects.create(
        job=current,
        state=current.state,
        attempt=current.attempts,
        worker=WORKER,
        **_error_fields(error),
    )
    dispatch(current)  # commits with the state change: a retry is never lost
    metrics.RETRIES.labels(job.name, job.queue).inc()
    logger.warning("job failed (%s); next attempt at %s", message, current.run_at.isoformat())
    return current.state


@transaction.atomic
def _snooze(job: Job, snooze: Snooze) -> str | None:
    """Give the attempt back and have the job due again in `snooze.seconds`, with no error
    recorded; past its type's `max_snoozes`, dead-letter it saying so."""
    _commit_async()
    current = Job.objects.select_for_update().get(pk=job.pk)
    if current.state != Job.State.RUNNING or current.attempts != job.attempts:
        return None
    job_type = registry.get(current.name)
    if current.snoozes >= job_type.max_snoozes:
        error = SnoozedTooOften(
            f"snoozed {current.snoozes} times, the most {current.name} may"
            f" (last: {snooze.reason or 'no reason given'})"
        )
        return _fail(job, error)
    now = timezone.now()
    current.attempts -= 1
    current.state = Job.State.QUEUED if current.attempts == 0 else Job.State.RETRYING
    current.snoozes += 1
    current.run_at = current.next_attempt_at = now + timedelta(seconds=snooze.seconds)
    current.lease_expires_at = None
    current.save()
    note = f"snoozed {snooze.seconds:g}s" + (f": {snooze.reason}" if snooze.reason else "")
    JobEvent.objects.create(
        job=current, state="snoozed", attempt=current.attempts, worker=WORKER, note=note
    )
    dispatch(current)
    metrics.SNOOZES.labels(job.name, job.queue).inc()
    logger.info("job %s", note)
    return current.state


def _dead_letter(job: Job, error: BaseException) -> None:
    history = [
        {"attempt": e.attempt, "at": e.at.isoformat(), "worker": e.worker, "error": e.error}
        for e in job.events.filter(state__in=["retrying", "dead"])
    ]
    DeadLetter.objects.create(
        job=job,
        name=job.name,
        queue=job.queue,
        payload=job.payload,
        error_class="JobTimeout" if isinstance(error, WorkerTimeout) else type(error).__name__,
        error_message=str(error),
        traceback="".join(traceback.format_exception(error)),
        attempts=job.attempts,
        history=history,
    )
    job_type = registry.all_types().get(job.name)
    if job_type is not None and job_type.on_dead is not None:
        try:
            with transaction.atomic():
                job_type.on_dead(job.payload, _error_text(error))
        except Exception:
            logger.exception("on_dead hook of %s failed", job.name)
