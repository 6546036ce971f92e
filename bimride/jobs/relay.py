"""The relay: push again jobs whose broker row is missing (a purged queue, an older release that
pushed after the commit), rescue orphans, and free jobs that a dead cluster had taken from the
broker but never started."""

import logging

from django.conf import settings
from django.utils import timezone

from bimride.jobs import broker
from bimride.jobs.enqueue import dispatch
from bimride.jobs.models import Job

logger = logging.getLogger(__name__)


def relay() -> dict:
    """Re-dispatch undispatched jobs older than JOB_RELAY_AFTER and running jobs whose lease
    expired (their worker died). A job pushed twice still runs once: the claim decides."""
    now = timezone.now()
    undispatched = Job.objects.filter(
        state__in=[Job.State.QUEUED, Job.State.RETRYING],
        dispatched_at__isnull=True,
        created_at__lt=now - settings.JOB_RELAY_AFTER,
    )
    orphans = Job.objects.filter(state=Job.State.RUNNING, lease_expires_at__lt=now)
    counts = {}
    for kind, jobs in (("undispatched", undispatched), ("orphaned", orphans)):
        counts[kind] = 0
        for job in jobs.order_by("id").iterator(chunk_size=500):
            dispatch(job)  # due at once: its due time is past
            counts[kind] += 1
    counts["stalled"] = len(
        broker.release_stalled(
            after=settings.JOB_STALL_AFTER.total_seconds(),
            waiting_states=(Job.State.QUEUED, Job.State.RETRYING),
        )
    )
    if any(counts.values()):
        logger.warning(
            "relay re-dispatched %(undispatched)s undispatched and %(orphaned)s orphaned jobs,"
            " released %(stalled)s stalled",
            counts,
        )
    return counts
