"""Snooze, concurrency keys, providers' rate limits, priorities and the checks that refuse a
misconfigured worker: through `run_job`, and through real `qcluster` processes."""

import threading
import time

import pytest
from django.core.checks import run_checks
from django.db import connection, transaction
from django.utils import timezone

from bimride.db import TransactionAroundProviderCall, provider_call
from bimride.jobs.engine import broker, ratelimit
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.q2compat import OrmQ
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job, JobEvent, ProviderBudget
from tests.conftest import wait_until
from tests.jobtypes import create_spans_table, spans


def fresh(job: Job) -> Job:
    return Job.objects.get(pk=job.pk)


# --- snooze -------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_snooze_uses_no_attempt_and_records_no_error():
    job = enqueue("tests.snoozer", {"n": 1})
    run_job(job.pk)
    job = fresh(job)
    assert (job.state, job.attempts, job.snoozes, job.last_error) == ("queued", 0, 1, "")
    assert job.run_at > timezone.now() and not DeadLetter.objects.exists()
    [event] = JobEvent.objects.filter(job=job, state="snoozed")
    assert event.note == "snoozed 0.1s: waiting (1 of 1)" and event.error == ""
    assert OrmQ.objects.filter(lock=job.run_at).count() == 1  # pushed again, due at its end


@pytest.mark.django_db
def test_snoozing_past_the_cap_dead_letters_the_job_saying_why():
    job = enqueue("tests.snoozer", {"n": 10})  # its type allows 3 snoozes
    for _ in range(4):
        Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
        run_job(job.pk)
    job = fresh(job)
    assert job.state == "dead" and job.snoozes == 3
    letter = DeadLetter.objects.get(job=job)
    assert letter.error_class == "SnoozedTooOften"
    assert "snoozed 3 times" in letter.error_message and "waiting (4 of 10)" in letter.error_message


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_job_snoozes_through_a_worker_then_succeeds_on_its_first_attempt(start_cluster):
    start_cluster("default", workers=1)
    job = enqueue("tests.snoozer", {"n": 2})
    wait_until(lambda: fresh(job).state == "succeeded", timeout=20, what="the snoozer")
    job = fresh(job)
    assert (job.attempts, job.snoozes, job.result) == (1, 2, {"snoozed": 2})


# --- concurrency keys ---------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_job_waits_for_an_earlier_live_job_of_its_key_without_using_an_attempt():
    first = enqueue("tests.keyed_span", {"n": 1, "key": 7, "sleep": 0})
    second = enqueue("tests.keyed_span", {"n": 2, "key": 7, "sleep": 0})
    other = enqueue("tests.keyed_span", {"n": 3, "key": 8, "sleep": 0})
    create_spans_table()
    before = timezone.now()
    run_job(second.pk)  # delivered first: it waits its turn
    waiting = fresh(second)
    assert (waiting.state, waiting.attempts) == ("queued", 0) and waiting.run_at > before
    run_job(other.pk)  # another key does not wait
    run_job(first.pk)
    Job.objects.filter(pk=second.pk).update(run_at=timezone.now())
    run_job(second.pk)
    assert [fresh(j).state for j in (first, second, other)] == ["succeeded"] * 3
    assert [fresh(j).attempts for j in (first, second, other)] == [1, 1, 1]


def _broker_rows_of(job: Job) -> list[int]:
    return [row.pk for row in OrmQ.objects.all() if broker.job_of(row.payload) == job.pk]


def _waiting_for_a_lock() -> list[str]:
    """The statements of this database's sessions waiting for a lock, as of now: inside a
    transaction PostgreSQL keeps showing its first look at the activity unless told to forget it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_stat_clear_snapshot()")
        cursor.execute(
            "SELECT query FROM pg_stat_activity WHERE wait_event_type = 'Lock'"
            " AND datname = current_database()"
        )
        return [query for (query,) in cursor.fetchall()]


@pytest.mark.django_db(transaction=True)  # another connection ends the earlier job meanwhile
def test_a_job_whose_key_comes_free_just_after_its_claim_failed_is_pushed_again():
    """The earlier job of the key ends between the claim that found the key held and the look
    at who holds it: the delivery took the job's broker row, so it must push the job again."""
    first = enqueue("tests.keyed_span", {"n": 1, "key": 7, "sleep": 0})
    second = enqueue("tests.keyed_span", {"n": 2, "key": 7, "sleep": 0})
    create_spans_table()
    Job.objects.filter(pk=first.pk).update(state="running")  # running on another host
    [row] = _broker_rows_of(second)
    holding, ended = threading.Event(), threading.Event()

    def end_the_first_job_once_the_delivery_waits():
        try:
            with transaction.atomic():  # holds the second job's row until the first has ended
                Job.objects.select_for_update().get(pk=second.pk)
                holding.set()
                wait_until(_waiting_for_a_lock, timeout=10, what="the delivery to wait")
                Job.objects.filter(pk=first.pk).update(state="succeeded")
            ended.set()
        finally:
            connection.close()

    other = threading.Thread(target=end_the_first_job_once_the_delivery_waits)
    other.start()
    assert holding.wait(10)
    run_job(second.pk, broker_row=row)  # claims nothing: the key was held when it looked
    other.join(15)
    assert ended.is_set() and fresh(second).state == "queued"
    [pushed] = _broker_rows_of(second)  # not swallowed: pushed again, due now
    assert pushed != row and fresh(second).run_at <= timezone.now()
    run_job(second.pk, broker_row=pushed)
    assert (fresh(second).state, fresh(second).attempts) == ("succeeded", 1)


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_jobs_of_one_key_run_one_at_a_time_in_order_across_hosts(start_cluster):
    create_spans_table()
    for host in ("a", "b"):  # two clusters of the same queue, as two hosts
        start_cluster("default", workers=1, JOB_WORKER_HOST=host, JOB_CONCURRENCY_DEFAULT="8")
    keyed = [enqueue("tests.keyed_span", {"n": n, "key": 1, "sleep": 0.3}) for n in range(5)]
    free = [enqueue("tests.span", {"n": n, "sleep": 1}) for n in range(3)]
    jobs = keyed + free
    wait_until(
        lambda: all(fresh(j).state == "succeeded" for j in jobs), timeout=40, what="the jobs"
    )
    by_job = {s["job_id"]: s for s in spans()}
    ordered = [by_job[j.pk] for j in keyed]
    assert all(a["ended"] <= b["started"] for a, b in zip(ordered, ordered[1:], strict=False))
    assert all(fresh(j).attempts == 1 for j in keyed)


# --- rate limits --------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_provider_over_its_budget_makes_the_caller_snooze(settings):
    settings.PROVIDER_RATE_LIMITS = {"stripe": 2.0}
    ratelimit.take("stripe")
    ratelimit.take("stripe")
    with pytest.raises(ratelimit.ProviderBusy) as busy:
        ratelimit.take("stripe")
    assert 0 < busy.value.seconds <= 0.5 and "over its 2/s budget" in busy.value.reason
    time.sleep(busy.value.seconds)
    ratelimit.take("stripe")  # a token came due


@pytest.mark.django_db
def test_a_429_pauses_every_call_to_the_provider_for_its_retry_after(settings):
    settings.PROVIDER_RATE_LIMITS = {"stripe": 100.0, "email": 0.0}
    busy = ratelimit.pause("email", 30)
    assert busy.seconds == 30
    for name in ("email", "email"):
        with pytest.raises(ratelimit.ProviderBusy) as again:
            ratelimit.take(name)
        assert 29 < again.value.seconds <= 30
    ratelimit.take("stripe")  # other providers carry on
    ProviderBudget.objects.filter(name="email").update(paused_until=timezone.now())
    ratelimit.take("email")


def test_no_provider_is_called_inside_a_transaction(db):
    with transaction.atomic(), pytest.raises(TransactionAroundProviderCall):
        provider_call("Stripe")
    provider_call("Stripe")  # outside one (the test's own wrapping transaction aside): fine


# --- priorities ---------------------------------------------------------------------------------
@pytest.mark.django_db(transaction=True)  # the broker takes rows due by the clock's now()
def test_receipts_and_payment_failures_are_taken_before_welcome_emails():
    from bimride.jobs.engine.broker import PostgresBroker
    from bimride.jobs.engine.q2compat import SignedPackage

    for n in range(12):
        enqueue("notifications.send_welcome", {"user_id": n + 1})
    receipt = enqueue("notifications.send_receipt", {"ride_id": 1})
    failed = enqueue(
        "notifications.send_payment_failed",
        {"ride_id": 1, "payment_id": 1, "amount": 100, "currency": "usd"},
    )
    taken = PostgresBroker(list_key="default").dequeue()
    order = [SignedPackage.loads(package)["args"][0] for _, package in taken]
    assert set(order[:2]) == {receipt.pk, failed.pk}


# --- checks -------------------------------------------------------------------------------------
def errors(ids: set[str]) -> list:
    return [e for e in run_checks() if e.id in ids]


def test_a_concurrency_of_zero_is_refused_at_start_up(settings):
    settings.JOB_CONCURRENCY = {"critical": 0, "default": 25, "bulk": 1}
    [error] = errors({"jobs.E001"})
    assert "JOB_CONCURRENCY_CRITICAL is 0" in error.msg


def test_workers_holding_more_connections_than_the_budget_are_refused(settings):
    settings.JOB_DB_POOL_SIZE = 30
    [error] = errors({"jobs.E003"})
    assert "JOB_DB_CONNECTION_BUDGET (40)" in error.msg and "critical: 2 × 30" in error.msg


def test_settings_without_alt_clusters_count_one_worker_for_the_other_queues(settings):
    settings.Q_CLUSTER = {"name": "default", "orm": "default", "workers": 2}  # plain django-q2's
    settings.JOB_DB_CONNECTION_BUDGET = 12  # default 2 × 4, critical 1 × 4, bulk 1 × 1: 13
    [error] = errors({"jobs.E003"})
    assert "up to 13 database connections" in error.msg and "critical: 1 × 4" in error.msg
    settings.JOB_DB_CONNECTION_BUDGET = 13
    assert errors({"jobs.E003"}) == []


def test_a_rate_limit_for_an_unknown_provider_is_refused(settings):
    settings.PROVIDER_RATE_LIMITS = {"stripe": 100.0, "strpie": 5.0}
    [error] = errors({"jobs.E004"})
    assert "'strpie'" in error.msg and "stripe" in error.hint


def test_a_concurrency_key_naming_a_missing_payload_field_is_refused():
    from bimride.jobs.engine import registry
    from tests.jobtypes import KeyedPayload, keyed_span

    broken = registry.JobType(
        "tests.broken_key", keyed_span.func, "default", keyed_span.retry, 10, KeyedPayload,
        concurrency_key="ride:{ride_id}",
    )  # fmt: skip
    registry._types[broken.name] = broken
    try:
        [error] = errors({"jobs.E006"})
    finally:
        del registry._types[broken.name]
    assert "tests.broken_key" in error.msg and "ride_id" in error.msg


def test_the_defaults_pass_every_check():
    assert errors({f"jobs.E00{n}" for n in range(1, 7)}) == []
