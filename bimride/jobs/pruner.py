"""Retention: finished jobs, old audit rows and django-q2 task rows are deleted in chunks.

Dead letters stay until resolved; a resolved one goes with its job after the retention period.
"""

from django.conf import settings
from django.db import transaction
from django.db.models import Q
from django.utils import timezone

from bimride.jobs import broker, metrics
from bimride.jobs.models import Job, ScheduleRun
from bimride.jobs.registry import JobContext

CHUNK = 1000


def prune(ctx: JobContext | None = None) -> dict:
    """Delete what is past JOB_RETENTION; returns the counts deleted."""
    cutoff = timezone.now() - settings.JOB_RETENTION
    finished = Job.objects.filter(finished_at__lt=cutoff).filter(
        Q(state__in=[Job.State.SUCCEEDED, Job.State.CANCELLED])
        | Q(state=Job.State.DEAD, dead_letter__resolution__in=["retried", "discarded"])
    )
    counts = {"jobs": 0}
    while ids := list(finished.values_list("id", flat=True)[:CHUNK]):
        with transaction.atomic():
            counts["jobs"] += Job.objects.filter(id__in=ids).delete()[1].get("jobs.Job", 0)
            if ctx is not None:
                ctx.report(done=counts["jobs"])
    counts["schedule_runs"] = ScheduleRun.objects.filter(intended_at__lt=cutoff).delete()[0]
    counts["task_results"] = broker.prune_task_results(before=cutoff)
    for kind, n in counts.items():
        metrics.PRUNED.labels(kind).inc(n)
    return counts
