"""Operations on jobs and dead letters, shared by the admin, the staff API and `manage.py jobs`."""

from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from bimride.errors import Conflict, NotFound, ValidationError
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.errors import JobPayloadError
from bimride.jobs.models import DeadLetter, Job, JobEvent


def _open_dead_letter(dead_letter_id: int) -> DeadLetter:
    dead_letter = (
        DeadLetter.objects.select_for_update().select_related("job").filter(pk=dead_letter_id)
    ).first()
    if dead_letter is None:
        raise NotFound("No such dead letter.")
    if dead_letter.resolution:
        raise Conflict(
            f"This dead letter was already {dead_letter.resolution}.", code="already_resolved"
        )
    return dead_letter


@transaction.atomic
def deadletter_retry(
    *, dead_letter_id: int, user: AbstractBaseUser | None, payload: dict | None = None, note=""
) -> Job:
    """Run a dead job again as a new job, with its payload or an edited one (validated)."""
    dead_letter = _open_dead_letter(dead_letter_id)
    old = dead_letter.job
    key = f"{old.idempotency_key}:retry{dead_letter.pk}" if old.idempotency_key else None
    try:
        new = enqueue(
            dead_letter.name,
            dead_letter.payload if payload is None else payload,
            idempotency_key=key,
            retry_of=old,
            # a task keeps its queue, priority and backend (a job type's queue is its own)
            queue=old.queue if old.backend else None,
            priority=old.priority,
            backend=old.backend,
        )
    except JobPayloadError as error:
        raise ValidationError(
            "The payload does not fit this job's schema.", fields=error.errors
        ) from None
    edited = payload is not None and payload != dead_letter.payload
    dead_letter.resolution = DeadLetter.Resolution.RETRIED
    dead_letter.resolved_at, dead_letter.resolved_by = timezone.now(), user
    dead_letter.retry_job = new
    dead_letter.note = note or ("retried with an edited payload" if edited else "retried")
    dead_letter.save()
    JobEvent.objects.create(
        job=old, state="retried", attempt=old.attempts, actor=user, note=f"as job {new.pk}"
    )
    return new


@transaction.atomic
def deadletter_discard(
    *, dead_letter_id: int, user: AbstractBaseUser | None, note: str = ""
) -> DeadLetter:
    """Close a dead letter without running it again, with the reason."""
    dead_letter = _open_dead_letter(dead_letter_id)
    dead_letter.resolution = DeadLetter.Resolution.DISCARDED
    dead_letter.resolved_at, dead_letter.resolved_by = timezone.now(), user
    dead_letter.note = note
    dead_letter.save()
    JobEvent.objects.create(
        job=dead_letter.job, state="discarded", attempt=dead_letter.attempts, actor=user, note=note
    )
    return dead_letter


@transaction.atomic
def job_cancel(*, job_id: int, user: AbstractBaseUser | None = None, note: str = "") -> Job:
    """Cancel a job that has not started (or is waiting to retry)."""
    job = Job.objects.select_for_update().filter(pk=job_id).first()
    if job is None:
        raise NotFound("No such job.")
    if job.state not in (Job.State.QUEUED, Job.State.RETRYING):
        raise Conflict(f"A {job.state} job cannot be cancelled.", code="invalid_transition")
    job.state, job.finished_at, job.next_attempt_at = Job.State.CANCELLED, timezone.now(), None
    job.save()
    JobEvent.objects.create(job=job, state=job.state, attempt=job.attempts, actor=user, note=note)
    return job
