"""What the conformance suite shares: the differences table's rows, and reading results."""

import pytest
from django_tasks.signals import task_enqueued, task_finished, task_started

from bimride.jobs.models import Job

TABLE = "docs/jobs.md, 'Differences from the reference'"


def differs(row: str, why: str):
    """Skip a reference behaviour BimRide deliberately does otherwise: `row` of the table."""
    return pytest.mark.skip(reason=f"deliberate difference ({TABLE}, row {row!r}): {why}")


def job_of(result) -> Job:
    """The ledger row of a result's job."""
    return Job.objects.get(uid=result.id)


def finished(result) -> bool:
    result.refresh()
    return result.is_finished


@pytest.fixture
def signals_seen():
    """Every Tasks API signal sent in this process meanwhile: (name, sender, result id, status)."""
    seen = []
    signals = {"enqueued": task_enqueued, "started": task_started, "finished": task_finished}
    for name, sent in signals.items():

        def receiver(sender, task_result, name=name, **kwargs):
            seen.append((name, sender, task_result.id, task_result.status))

        sent.connect(receiver, weak=False, dispatch_uid=f"conformance-{name}")
    yield seen
    for name, sent in signals.items():
        sent.disconnect(dispatch_uid=f"conformance-{name}")
