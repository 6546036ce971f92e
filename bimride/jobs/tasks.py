"""The job system's own jobs: the outbox relay, retention and the alert check."""

from bimride.jobs.engine import pruner, relay
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.registry import JobContext, job
from bimride.jobs.engine.schedules import schedule
from bimride.jobs.ops import alerts


@job("jobs.relay_outbox", timeout=60)
def relay_outbox(payload: dict, ctx: JobContext) -> dict:
    """Push undispatched jobs and rescue orphans (see bimride.jobs.engine.relay)."""
    return relay.relay()


@job("jobs.prune", queue="bulk", timeout=300, atomic=False)
def prune(payload: dict, ctx: JobContext) -> dict:
    """Delete finished jobs, audit rows and task results past their retention. A run stops a
    minute before its timeout and, if jobs past retention are left, enqueues the next run."""
    counts = pruner.prune(ctx, budget=PRUNE_BUDGET)
    if counts["more"]:
        enqueue("jobs.prune", {})
    return counts


PRUNE_BUDGET = 240  # seconds of the prune job's 300 s timeout spent deleting


@job("jobs.check_alerts", timeout=60)
def check_alerts(payload: dict, ctx: JobContext) -> dict:
    """Raise or clear alerts for dead letters and queue lag."""
    return alerts.check()


schedule("jobs.relay_outbox", "* * * * *")  # every minute
schedule("jobs.check_alerts", "* * * * *")  # every minute
schedule("jobs.prune", "30 3 * * *")  # daily 03:30
