"""`perform_job`: a job's handler run in a test as a worker runs it."""

from datetime import date

import pytest

from bimride.errors import PermanentError
from bimride.jobs.engine.errors import JobPayloadError
from bimride.jobs.models import Job
from bimride.jobs.testing import perform_job

pytestmark = pytest.mark.django_db


def test_the_handler_gets_the_stored_payload_and_the_context_of_a_first_attempt():
    result = perform_job("tests.echo", {"pair": (1, 2), "n": 7})

    job = Job.objects.get(name="tests.echo")
    assert result["payload"] == {"pair": [1, 2], "n": 7}  # what a JSON round trip leaves
    assert result["ctx"] == {
        "job_id": job.pk,
        "name": "tests.echo",
        "queue": "default",
        "attempt": 1,
        "trace_id": job.trace_id,
        "idempotency_key": f"job:{job.pk}",
        "progress": None,
    }
    assert job.state == "succeeded" and job.attempts == 1 and job.result == result


def test_overrides_change_the_context_and_the_job_alike():
    result = perform_job("tests.echo", {}, idempotency_key="echo:1", attempt=3)

    job = Job.objects.get(name="tests.echo")
    assert result["ctx"]["idempotency_key"] == job.idempotency_key == "echo:1"
    assert result["ctx"]["attempt"] == job.attempts == 3


def test_a_payload_that_a_job_could_not_store_is_refused():
    with pytest.raises(JobPayloadError):
        perform_job("tests.echo", {"day": date(2026, 1, 1)})
    with pytest.raises(JobPayloadError):
        perform_job("tests.declined", {"n": -1})
    assert not Job.objects.exists()


def test_the_handlers_error_reaches_the_test():
    with pytest.raises(PermanentError, match="declined"):
        perform_job("tests.declined", {"n": 1})
