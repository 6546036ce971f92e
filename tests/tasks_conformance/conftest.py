"""What the conformance suite shares: the differences table's rows, and reading results."""

import pytest

from bimride.jobs.models import Job

TABLE = "README, Tasks API, 'Differences from the reference'"


def differs(row: str, why: str):
    """Skip a reference behaviour BimRide deliberately does otherwise: `row` of the table."""
    return pytest.mark.skip(reason=f"deliberate difference ({TABLE}, row {row!r}): {why}")


def job_of(result) -> Job:
    """The ledger row of a result's job."""
    return Job.objects.get(uid=result.id)


def finished(result) -> bool:
    result.refresh()
    return result.is_finished
