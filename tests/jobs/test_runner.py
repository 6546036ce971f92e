"""run_job() called directly: the claim, retries with back-off, dead letters, duplicates."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bimride.errors import Conflict, ValidationError
from bimride.jobs.engine.broker import job_of
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.q2compat import OrmQ
from bimride.jobs.engine.relay import relay
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.ops import services
from tests.jobtypes import create_effects_table, effects

JOB = "tests.effect_default"


@pytest.fixture(autouse=True)
def _effects(db, settings):
    settings.JOB_RETRY_SCALE = 0  # back-offs of zero: the next attempt is due at once
    create_effects_table()


def states(job: Job) -> list[str]:
    return list(job.events.values_list("state", flat=True))


def test_a_job_runs_once_and_records_its_result_and_audit_trail():
    job = enqueue(JOB, {"n": 5})
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.attempts == 1
    assert job.result == {"n": 5, "attempt": 1}
    assert job.started_at and job.finished_at and job.lease_expires_at is None
    assert states(job) == ["queued", "running", "succeeded"]
    assert effects() == [(job.pk, 1)]


def test_a_duplicate_delivery_of_a_finished_job_is_a_no_op():
    job = enqueue(JOB, {"n": 1})
    run_job(job.pk)
    run_job(job.pk)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.attempts == 1 and states(job) == ["queued", "running", "succeeded"]
    assert effects() == [(job.pk, 1)]


def test_a_delivery_of_a_job_running_elsewhere_is_a_no_op():
    job = enqueue(JOB, {"n": 1})
    Job.objects.filter(pk=job.pk).update(
        state="running", attempts=1, lease_expires_at=timezone.now() + timedelta(minutes=1)
    )
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "running" and job.attempts == 1 and effects() == []


def test_a_job_whose_worker_died_is_claimed_again_once_its_lease_expired():
    job = enqueue(JOB, {"n": 1})
    Job.objects.filter(pk=job.pk).update(
        state="running", attempts=1, lease_expires_at=timezone.now() - timedelta(seconds=1)
    )
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.attempts == 2
    assert effects() == [(job.pk, 2)]


def test_a_failed_attempt_is_retried_with_back_off_and_rolls_back_its_effects(settings):
    settings.JOB_RETRY_SCALE = 1
    job = enqueue(JOB, {"n": 1, "fail_times": 1})
    OrmQ.objects.all().delete()  # a pusher took it
    before = timezone.now()
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "retrying" and job.attempts == 1
    assert "planned failure of attempt 1" in job.last_error
    # full jitter: anywhere from now to the policy's first cap (1 s)
    assert before <= job.next_attempt_at <= timezone.now() + timedelta(seconds=1)
    assert OrmQ.objects.get().lock == job.next_attempt_at  # pushed with the state change
    assert effects() == []
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.attempts == 2
    assert states(job) == ["queued", "running", "retrying", "running", "succeeded"]
    assert effects() == [(job.pk, 2)]


def test_an_early_delivery_of_a_retrying_job_does_not_run_it_and_keeps_it_scheduled(settings):
    settings.JOB_RETRY_SCALE = 1000
    job = enqueue(JOB, {"n": 1, "fail_times": 1})
    run_job(job.pk)
    OrmQ.objects.all().delete()
    run_job(job.pk)  # a stray delivery before the next attempt is due
    job.refresh_from_db()
    assert job.state == "retrying" and job.attempts == 1
    assert OrmQ.objects.get().lock == job.run_at


def test_a_job_that_exhausts_its_attempts_becomes_a_dead_letter_with_its_history():
    job = enqueue(JOB, {"n": 1, "fail_times": 99})
    for _ in range(3):
        run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "dead" and job.attempts == 3
    letter = DeadLetter.objects.get(job=job)
    assert letter.error_class == "RuntimeError"
    assert letter.error_message == "planned failure of attempt 3"
    assert "Traceback" in letter.traceback and letter.attempts == 3
    assert [h["attempt"] for h in letter.history] == [1, 2, 3]
    assert letter.payload == {"n": 1, "fail_times": 99}
    run_job(job.pk)  # a dead job never runs again
    assert Job.objects.get(pk=job.pk).attempts == 3


def test_a_permanent_error_skips_retries():
    job = enqueue("tests.declined", {"n": 1})
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "dead" and job.attempts == 1
    letter = DeadLetter.objects.get(job=job)
    assert letter.error_class == "PermanentError"
    assert letter.error_message == "Your card was declined."


def test_retrying_a_dead_letter_runs_a_new_job_linked_to_it(staff):
    job = enqueue(JOB, {"n": 1, "fail_times": 99}, idempotency_key="effect:1")
    for _ in range(3):
        run_job(job.pk)
    letter = DeadLetter.objects.get(job=job)

    new = services.deadletter_retry(
        dead_letter_id=letter.pk, user=staff, payload={"n": 1, "fail_times": 0}
    )
    run_job(new.pk)

    new.refresh_from_db()
    letter.refresh_from_db()
    assert new.state == "succeeded" and new.retry_of_id == job.pk
    assert new.idempotency_key == f"effect:1:retry{letter.pk}"
    assert letter.resolution == "retried" and letter.retry_job_id == new.pk
    assert letter.resolved_by == staff and letter.note == "retried with an edited payload"
    assert states(job)[-1] == "retried"
    with pytest.raises(Conflict):
        services.deadletter_retry(dead_letter_id=letter.pk, user=staff)


def test_an_edited_payload_that_breaks_the_schema_is_refused_with_the_reason(staff):
    job = enqueue("tests.declined", {"n": 1})
    run_job(job.pk)
    letter = DeadLetter.objects.get(job=job)
    with pytest.raises(ValidationError) as raised:
        services.deadletter_retry(dead_letter_id=letter.pk, user=staff, payload={"n": "x"})
    assert "n" in raised.value.fields
    letter.refresh_from_db()
    assert letter.resolution == "" and Job.objects.count() == 1


def test_discarding_a_dead_letter_records_who_and_why(staff):
    job = enqueue("tests.declined", {"n": 1})
    run_job(job.pk)
    letter = services.deadletter_discard(
        dead_letter_id=DeadLetter.objects.get(job=job).pk, user=staff, note="refunded by hand"
    )
    assert letter.resolution == "discarded" and letter.resolved_by == staff
    assert states(job)[-1] == "discarded"


def test_a_queued_job_can_be_cancelled_and_then_never_runs():
    job = enqueue(JOB, {"n": 1})
    services.job_cancel(job_id=job.pk)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "cancelled" and job.attempts == 0 and effects() == []
    with pytest.raises(Conflict):
        services.job_cancel(job_id=job.pk)


def test_the_relay_pushes_jobs_without_a_broker_row(settings):
    settings.JOB_RELAY_AFTER = timedelta(0)
    job = enqueue(JOB, {"n": 1})
    OrmQ.objects.all().delete()  # lost: a purged queue, an older release
    Job.objects.filter(pk=job.pk).update(dispatched_at=None)
    assert relay() == {"undispatched": 1, "orphaned": 0, "stalled": 0}
    job.refresh_from_db()
    assert job.dispatched_at is not None and job_of(OrmQ.objects.get().payload) == job.pk
    assert relay() == {"undispatched": 0, "orphaned": 0, "stalled": 0}


def test_the_relay_frees_jobs_a_dead_cluster_took_but_never_started(settings):
    settings.JOB_STALL_AFTER = timedelta(seconds=60)
    retry = settings.Q_CLUSTER["retry"]
    taken_long_ago = timezone.now() + timedelta(seconds=retry - 120)  # taken 2 minutes ago
    taken_just_now = timezone.now() + timedelta(seconds=retry - 5)
    due = timezone.now() - timedelta(minutes=3)
    stalled, fresh, running = (
        enqueue(JOB, {"n": n}, run_at=due - timedelta(seconds=n)) for n in range(3)
    )
    enqueue(JOB, {"n": 3}, delay=timedelta(minutes=5))  # its row is in the future too, at its
    # due time: not a stalled take
    for job, lock in (
        (stalled, taken_long_ago),
        (fresh, taken_just_now),
        (running, taken_long_ago),
    ):
        OrmQ.objects.filter(lock=job.run_at).update(lock=lock)
    Job.objects.filter(pk=running.pk).update(
        state="running", attempts=1, lease_expires_at=timezone.now() + timedelta(minutes=1)
    )

    assert relay()["stalled"] == 1

    visible = OrmQ.objects.filter(lock__lte=timezone.now())
    assert [job_of(row.payload) for row in visible] == [stalled.pk]
    assert OrmQ.objects.count() == 4
