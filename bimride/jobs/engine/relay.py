"""The relay: push again jobs whose broker row is missing (a purged queue, an older release that
pushed after the commit), rescue orphans, and free jobs that a dead cluster had taken from the
broker but never started."""

import logging

from django.conf import settings
from django.utils import timezone

from bimride.jobs.engine import broker
from bimride.jobs.engine.plans import custom_plans
from bimride.jobs.models import Job

logger = logging.getLogger(__name__)

BATCH = 500  # jobs read and pushed per statement


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
        with custom_plans():  # their partial indexes, however often the relay ran before
            counts[kind] = _push_in_batches(jobs)
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


def _push_in_batches(jobs) -> int:
    """Push `jobs` again (due at once: their due time is past), BATCH at a time in id order, each
    batch read after the last id of the one before: memory stays bounded without a cursor held
    across transactions (none survives one behind a transaction-mode pooler)."""
    pushed, last_id = 0, 0
    while batch := list(jobs.filter(pk__gt=last_id).order_by("id").only("id")[:BATCH]):
        broker.push(batch)
        pushed, last_id = pushed + len(batch), batch[-1].pk
    return pushed
