"""Enqueueing: validated payloads, the ledger and broker rows in the caller's transaction."""

import threading
from datetime import timedelta

import psycopg
import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from bimride.jobs import Event
from bimride.jobs.engine.broker import job_of
from bimride.jobs.engine.enqueue import enqueue, publish
from bimride.jobs.engine.errors import JobPayloadError, UnknownJob
from bimride.jobs.engine.q2compat import OrmQ
from bimride.jobs.models import Job, JobEvent
from rides.events import RideCancelled
from tests.pooler import direct_database_url


class NobodyListens(Event, name="tests.nobody_listens"):
    ride_id: int


JOB = "tests.effect_default"


@pytest.mark.parametrize(
    "payload",
    [
        {},  # missing n
        {"n": "many"},
        {"n": -1},
        {"n": 1, "sleep": 3600},
        ["n", 1],
    ],
)
@pytest.mark.django_db
def test_a_bad_payload_is_refused_at_the_call_site_and_nothing_is_stored(payload):
    with pytest.raises(JobPayloadError) as raised:
        enqueue(JOB, payload)
    assert "Invalid payload for tests.effect_default" in str(raised.value)
    assert Job.objects.count() == 0 and OrmQ.objects.count() == 0


@pytest.mark.django_db
def test_an_unknown_job_name_is_refused():
    with pytest.raises(UnknownJob):
        enqueue("tests.no_such_job", {"n": 1})


def other_connection() -> psycopg.Connection:
    """A second connection to the test database, as a pusher has: direct, never through a
    transaction-mode pooler, where a LISTEN hears nothing."""
    return psycopg.connect(direct_database_url())


@pytest.mark.django_db(transaction=True)
def test_a_job_is_written_and_pushed_in_one_statement_seen_by_pushers_at_commit():
    with other_connection() as pusher:
        pusher.autocommit = True
        pusher.execute('LISTEN "bimride_jobs_default"')
        with CaptureQueriesContext(connection) as queries, transaction.atomic():
            job = enqueue(JOB, {"n": 1})
            assert len(queries) == 2  # BEGIN, then the one statement
            assert pusher.execute("SELECT count(*) FROM django_q_ormq").fetchone() == (0,)
            assert list(pusher.notifies(timeout=0.2, stop_after=1)) == []
        assert len(queries) == 3  # and COMMIT: nothing after it
        assert pusher.execute("SELECT count(*) FROM django_q_ormq").fetchone() == (1,)
        assert [n.channel for n in pusher.notifies(timeout=5, stop_after=1)] == [
            "bimride_jobs_default"
        ]
    job.refresh_from_db()
    assert job.dispatched_at == job.created_at
    row = OrmQ.objects.get()
    assert (row.key, row.lock, job_of(row.payload)) == ("default", job.run_at, job.pk)
    assert list(job.events.values_list("state", flat=True)) == ["queued"]


@pytest.mark.django_db(transaction=True)
def test_a_rollback_leaves_no_job_and_no_push():
    with pytest.raises(RuntimeError), transaction.atomic():
        enqueue(JOB, {"n": 1})
        raise RuntimeError("the business write failed")
    assert Job.objects.count() == 0 and OrmQ.objects.count() == 0 and JobEvent.objects.count() == 0


@pytest.mark.django_db(transaction=True)
def test_a_transactions_jobs_are_pushed_except_a_rolled_back_savepoints():
    with transaction.atomic():
        first = enqueue(JOB, {"n": 1})
        with pytest.raises(RuntimeError), transaction.atomic():
            enqueue(JOB, {"n": 2})
            raise RuntimeError("this part failed")
        second = enqueue("tests.effect_bulk", {"n": 3})
    rows = {job_of(row.payload): row.key for row in OrmQ.objects.all()}
    assert rows == {first.pk: "default", second.pk: "bulk"}
    assert set(Job.objects.values_list("pk", flat=True)) == {first.pk, second.pk}


@pytest.mark.django_db(transaction=True)
def test_a_deferred_job_is_invisible_to_the_broker_until_due():
    before = timezone.now()
    job = enqueue(JOB, {"n": 1}, delay=timedelta(seconds=30))
    assert job.run_at >= before + timedelta(seconds=30)
    assert OrmQ.objects.get().lock == job.run_at
    assert OrmQ.objects.filter(lock__lte=timezone.now()).count() == 0


@pytest.mark.django_db(transaction=True)
def test_an_existing_idempotency_key_returns_the_existing_job():
    first = enqueue(JOB, {"n": 1}, idempotency_key="capture:42")
    again = enqueue(JOB, {"n": 2}, idempotency_key="capture:42")
    assert again.pk == first.pk and again.payload == {"n": 1}
    assert Job.objects.count() == 1 and OrmQ.objects.count() == 1


@pytest.mark.django_db(transaction=True)
def test_racing_transactions_with_one_idempotency_key_make_one_job():
    barrier = threading.Barrier(8)
    ids, errors = [], []

    def race():
        try:
            barrier.wait(timeout=10)
            with transaction.atomic():
                ids.append(enqueue(JOB, {"n": 1}, idempotency_key="payout:17:2026-W08").pk)
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=race) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(ids) == 8 and len(set(ids)) == 1
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_an_event_without_subscribers_enqueues_nothing():
    assert publish(NobodyListens(ride_id=1)) == [] and Job.objects.count() == 0


@pytest.mark.django_db
def test_publish_enqueues_one_job_per_subscriber_in_one_statement():
    with CaptureQueriesContext(connection) as queries:
        jobs = publish(RideCancelled(ride_id=7, cancelled_by="driver"))
    assert len(queries) == 1
    assert sorted(j.name for j in jobs) == [
        "notifications.push_ride_cancelled",
        "notifications.send_ride_cancelled",
        "payments.release_authorization",
    ]
    assert {j.subject for j in jobs} == {"ride:7"}
    assert {j.queue for j in jobs} == {"critical", "default"}
    # Each returned job is the row written for it, with its audit event and its broker row.
    stored = {job.pk: (job.name, job.queue) for job in Job.objects.all()}
    assert stored == {job.pk: (job.name, job.queue) for job in jobs}
    assert JobEvent.objects.filter(job__in=jobs, state="queued").count() == 3
    pushed = {job_of(row.payload): row.key for row in OrmQ.objects.all()}
    assert pushed == {job.pk: job.queue for job in jobs}
