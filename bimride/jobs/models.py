"""The job ledger (also the outbox), its audit trail and the dead letters."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

# Waiting or running: the few rows the workers, the relay and the queue figures read. Every other
# state is final, and finished rows are most of the ledger.
LIVE_STATES = ("queued", "retrying", "running")


class Job(models.Model):
    class State(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"
        SUCCEEDED = "succeeded"
        RETRYING = "retrying"
        DEAD = "dead"
        CANCELLED = "cancelled"

    name = models.CharField(max_length=200)  # a job type's name, or a task's module path
    # The job's opaque id: a task's result id, also accepted by the job status API. Jobs written
    # before it existed have none (their integer id was their result id and stays usable).
    uid = models.UUIDField(null=True, blank=True, default=uuid.uuid4, editable=False)
    queue = models.CharField(max_length=20)
    payload = models.JSONField(default=dict)  # a task's: {"args": [...], "kwargs": {...}}
    state = models.CharField(max_length=20, choices=State.choices, default=State.QUEUED)
    # Higher first: among a queue's due jobs, workers claim the highest priority first.
    priority = models.SmallIntegerField(default=0, db_default=0)
    # A task's TASKS alias (Django's Tasks API); blank for a job enqueued by its job type.
    backend = models.CharField(max_length=32, blank=True, default="", db_default="")
    attempts = models.PositiveIntegerField(default=0)
    max_attempts = models.PositiveIntegerField()
    timeout = models.PositiveIntegerField()  # seconds per attempt
    idempotency_key = models.CharField(max_length=255, null=True, blank=True, unique=True)
    trace_id = models.CharField(max_length=64, blank=True)
    subject = models.CharField(max_length=64, blank=True)  # "ride:42": whose job this is
    created_at = models.DateTimeField(default=timezone.now)
    run_at = models.DateTimeField(default=timezone.now)  # when the next attempt is due
    run_after = models.DateTimeField(null=True, blank=True)  # the due time asked at enqueue
    dispatched_at = models.DateTimeField(null=True, blank=True)  # pushed to the broker
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    next_attempt_at = models.DateTimeField(null=True, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    worker = models.CharField(max_length=100, blank=True)
    result = models.JSONField(null=True, blank=True)
    last_error = models.TextField(blank=True)
    progress = models.JSONField(null=True, blank=True)
    # Times a handler said "not yet" (JobContext.snooze): no attempt used, capped per job type.
    snoozes = models.PositiveIntegerField(default=0, db_default=0)
    # "ride:42": of the live jobs sharing a key, only the oldest may run (one at a time, in order).
    concurrency_key = models.CharField(max_length=200, blank=True, default="", db_default="")
    retry_of = models.ForeignKey(
        "self",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="retries",
        db_index=False,  # job_retry_of_idx: only the few jobs that are retries
    )

    class Meta:
        ordering = ["-id"]
        indexes = [
            models.Index(
                fields=["state", "queue", "run_at"],
                name="job_live_idx",
                condition=Q(state__in=LIVE_STATES),
            ),
            # The admin's state filter, newest first; succeeded jobs are read along the primary key.
            models.Index(
                fields=["state", "id"], name="job_state_idx", condition=~Q(state="succeeded")
            ),
            models.Index(fields=["name", "created_at"], name="job_name_idx"),
            models.Index(fields=["subject"], name="job_subject_idx"),
            models.Index(fields=["trace_id"], name="job_trace_idx"),
            # The last hour's throughput per queue and state, read from the index alone.
            models.Index(
                fields=["finished_at"], name="job_finished_cover_idx", include=["queue", "state"]
            ),
            models.Index(fields=["created_at"], name="job_created_idx"),  # the date drill-down
            models.Index(fields=["backend", "id"], name="job_task_idx", condition=~Q(backend="")),
            models.Index(
                fields=["created_at"],
                name="job_undispatched_idx",
                condition=Q(dispatched_at__isnull=True, state__in=["queued", "retrying"]),
            ),
            models.Index(
                fields=["lease_expires_at"], name="job_running_idx", condition=Q(state="running")
            ),
            models.Index(
                fields=["retry_of"], name="job_retry_of_idx", condition=Q(retry_of__isnull=False)
            ),
            models.Index(
                fields=["concurrency_key", "id"],
                name="job_concurrency_key_idx",
                condition=Q(state__in=LIVE_STATES) & ~Q(concurrency_key=""),
            ),
        ]
        constraints = [
            models.UniqueConstraint(
                fields=["uid"], name="job_uid_uniq", condition=Q(uid__isnull=False)
            ),
            models.CheckConstraint(condition=Q(max_attempts__gte=1), name="job_max_attempts_pos"),
            models.CheckConstraint(
                condition=Q(priority__gte=-100, priority__lte=100), name="job_priority_range"
            ),
        ]

    def __str__(self) -> str:
        return f"#{self.pk} {self.name} ({self.state})"


class JobEvent(models.Model):
    """One state change of a job: the audit trail, with the attempt's worker and error."""

    job = models.ForeignKey(Job, on_delete=models.CASCADE, related_name="events")
    state = models.CharField(max_length=20)
    attempt = models.PositiveIntegerField(default=0)
    at = models.DateTimeField(default=timezone.now)
    worker = models.CharField(max_length=100, blank=True)
    error = models.TextField(blank=True)
    # A failed attempt's exception, its class by module path ("builtins.ValueError").
    error_class = models.CharField(max_length=200, blank=True, default="", db_default="")
    traceback = models.TextField(blank=True, default="", db_default="")
    note = models.TextField(blank=True)
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_index=False,  # jobevent_actor_idx: only the few events staff caused
    )

    class Meta:
        ordering = ["at", "id"]
        indexes = [
            models.Index(
                fields=["actor"], name="jobevent_actor_idx", condition=Q(actor__isnull=False)
            )
        ]

    def __str__(self) -> str:
        return f"{self.state} (attempt {self.attempt})"


class DeadLetter(models.Model):
    """A job that failed for good, kept until ops staff retry or discard it."""

    class Resolution(models.TextChoices):
        OPEN = "", "open"
        RETRIED = "retried"
        DISCARDED = "discarded"

    job = models.OneToOneField(Job, on_delete=models.CASCADE, related_name="dead_letter")
    name = models.CharField(max_length=200)
    queue = models.CharField(max_length=20)
    payload = models.JSONField(default=dict)
    error_class = models.CharField(max_length=200)
    error_message = models.TextField(blank=True)
    traceback = models.TextField(blank=True)
    attempts = models.PositiveIntegerField()
    history = models.JSONField(default=list)  # [{attempt, at, worker, error}]
    created_at = models.DateTimeField(default=timezone.now)
    resolution = models.CharField(
        max_length=20, choices=Resolution.choices, default=Resolution.OPEN, blank=True
    )
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    note = models.TextField(blank=True)
    retry_job = models.ForeignKey(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["resolution", "created_at"], name="deadletter_open_idx")]

    def __str__(self) -> str:
        return f"{self.name} #{self.job_id}: {self.error_class}"


class ScheduleRun(models.Model):
    """One occurrence of a declared schedule: unique per schedule and intended time."""

    schedule = models.CharField(max_length=100)
    intended_at = models.DateTimeField()
    fired_at = models.DateTimeField(default=timezone.now)
    job = models.OneToOneField(
        Job, null=True, blank=True, on_delete=models.SET_NULL, related_name="schedule_run"
    )

    class Meta:
        ordering = ["-intended_at"]
        constraints = [
            models.UniqueConstraint(fields=["schedule", "intended_at"], name="schedule_run_once")
        ]

    def __str__(self) -> str:
        return f"{self.schedule} @ {self.intended_at:%Y-%m-%d %H:%M %Z}"


class Alert(models.Model):
    """An incident raised by the alert check; it clears itself when its condition clears."""

    key = models.CharField(max_length=100)  # "dead_letters", "lag:critical"
    message = models.TextField()
    opened_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    cleared_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-opened_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["key"], condition=Q(cleared_at__isnull=True), name="alert_one_open_per_key"
            )
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.message}"


class ProviderBudget(models.Model):
    """A provider's rate limit, shared by every worker on every host: a token bucket refilled at
    the provider's rate, and a pause set by the provider's own "too many requests"."""

    name = models.CharField(max_length=50, primary_key=True)  # "stripe"
    tokens = models.FloatField(default=0)
    refreshed_at = models.DateTimeField(default=timezone.now)
    paused_until = models.DateTimeField(null=True, blank=True)

    def __str__(self) -> str:
        return self.name
