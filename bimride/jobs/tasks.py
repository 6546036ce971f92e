"""The job system's own jobs: the outbox relay, retention and the alert check."""

from bimride.jobs import alerts, pruner, relay
from bimride.jobs.registry import JobContext, job
from bimride.jobs.schedules import schedule


@job("jobs.relay_outbox", timeout=60)
def relay_outbox(payload: dict, ctx: JobContext) -> dict:
    """Push undispatched jobs and rescue orphans (see bimride.jobs.relay)."""
    return relay.relay()


@job("jobs.prune", queue="bulk", timeout=300, atomic=False)
def prune(payload: dict, ctx: JobContext) -> dict:
    """Delete finished jobs, audit rows and task results past their retention. A run stops a
    minute before its timeout and, if jobs past retention are left, enqueues the next run."""
    counts = pruner.prune(ctx, budget=PRUNE_BUDGET)
    if counts["more"]:
        prune.enqueue({})
    return counts


PRUNE_BUDGET = 240  # seconds of the prune job's 300 s timeout spent deleting


@job("jobs.check_alerts", timeout=60)
def check_alerts(payload: dict, ctx: JobContext) -> dict:
    """Raise or clear alerts for dead letters and queue lag."""
    return alerts.check()


schedule("jobs.relay_outbox", "* * * * *")  # every minute
schedule("jobs.check_alerts", "* * * * *")  # every minute
schedule("jobs.prune", "30 3 * * *")  # daily 03:30
