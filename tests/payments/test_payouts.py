"""Weekly driver incentive payouts: one Payout row and one Stripe transfer per driver and ISO
week, through the stand-in, with Stripe's failures by kind."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.ops.services import deadletter_retry
from payments import tasks
from payments.models import Payment, Payout, StripeAccount
from rides.models import Ride
from tests.conftest import wait_until
from tests.factories import DriverFactory, RiderFactory
from tests.payments.conftest import jobs_named, ride_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def last_week(settings):
    """The ISO week before this one, in which `earn(driver, n)` completes n rides."""
    settings.PAYOUT_MIN_RIDES, settings.PAYOUT_PER_RIDE = 2, 100
    moment = timezone.now() - timedelta(days=7)
    year, week, _ = timezone.localdate(moment).isocalendar()
    return moment, f"{year}-W{week:02d}"


def earn(driver, rides: int, moment) -> None:
    rider = RiderFactory()
    for _ in range(rides):
        ride = ride_in("completed", rider=rider, driver=driver)
        Ride.objects.filter(pk=ride.pk).update(completed_at=moment)


def payout_job(last_week, rides: int = 2) -> Job:
    """The incentive job of a new driver who completed `rides` rides last week."""
    moment, week = last_week
    driver = DriverFactory()
    earn(driver, rides, moment)
    return enqueue(tasks.pay_driver_incentive.name, {"driver_id": driver.pk, "week": week})


def run_batch(week: str) -> None:
    batch = enqueue(tasks.run_weekly_payouts.name, {"week": week})
    run_job(batch.pk)
    for job in jobs_named("payments.pay_driver_incentive"):
        run_job(job.pk)


def test_the_batch_twice_pays_each_driver_once_by_one_transfer(stripe_standin, last_week):
    moment, week = last_week
    busy, quiet = DriverFactory(), DriverFactory()
    earn(busy, 3, moment)
    earn(quiet, 1, moment)  # below PAYOUT_MIN_RIDES: no incentive
    run_batch(week)
    run_batch(week)
    assert jobs_named("payments.pay_driver_incentive").count() == 2
    [payout] = Payout.objects.all()
    assert (payout.driver, payout.week, payout.rides, payout.amount) == (busy, week, 3, 300)
    assert payout.status == "paid" and payout.paid_at is not None
    [transfer] = stripe_standin.transfers.values()
    account = StripeAccount.objects.get(driver=busy)
    assert transfer["id"] == payout.stripe_transfer_id
    assert (transfer["amount"], transfer["currency"]) == (300, "usd")
    assert transfer["destination"] == account.account_id
    assert transfer["transfer_group"] == f"payouts:{week}"
    assert transfer["metadata"] == {
        "driver_id": str(busy.pk),
        "week": week,
        "payout_id": str(payout.pk),
    }
    assert stripe_standin.accounts[account.account_id]["email"] == busy.user.email
    assert Payment.objects.count() == 0


def test_a_rerun_after_stripe_answered_but_before_it_was_recorded_transfers_once(
    stripe_standin, last_week
):
    job = payout_job(last_week)
    run_job(job.pk)
    # The worker died between Stripe's answer and the record: the row is still pending.
    Payout.objects.update(status="pending", stripe_transfer_id="", paid_at=None)
    again = enqueue(tasks.pay_driver_incentive.name, job.payload)
    run_job(again.pk)
    [payout] = Payout.objects.all()
    assert payout.status == "paid" and len(stripe_standin.transfers) == 1
    assert payout.stripe_transfer_id in stripe_standin.transfers
    assert stripe_standin.replays >= 1
    assert stripe_standin.idempotency_keys[f"payout:{payout.pk}"] == 2


def test_stripe_unavailable_is_retried_then_paid(stripe_standin, last_week):
    job = payout_job(last_week)
    stripe_standin.fail_next("500", path="transfers")
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "retrying" and "StripeUnavailable" in job.last_error
    assert Payout.objects.get().status == "pending" and not stripe_standin.transfers
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and Payout.objects.get().status == "paid"
    assert len(stripe_standin.transfers) == 1


def test_a_refused_transfer_fails_the_payout_and_a_retried_dead_letter_pays_it(
    stripe_standin, last_week, staff
):
    job = payout_job(last_week)
    stripe_standin.fail_next("insufficient_funds", path="transfers")
    run_job(job.pk)
    letter = DeadLetter.objects.get(job=job)
    assert letter.attempts == 1 and letter.error_class == "PaymentRejected"
    assert letter.error_message.startswith("balance_insufficient:")
    payout = Payout.objects.get()
    assert payout.status == "failed" and "balance_insufficient" in payout.failure_message
    assert not stripe_standin.transfers
    retry = deadletter_retry(dead_letter_id=letter.pk, user=staff, note="balance topped up")
    run_job(retry.pk)
    payout.refresh_from_db()
    assert payout.status == "paid" and payout.failure_message == ""
    assert list(stripe_standin.transfers) == [payout.stripe_transfer_id]


def test_a_driver_without_an_incentive_is_skipped_without_calling_stripe(stripe_standin, last_week):
    job = payout_job(last_week, rides=1)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.result == {"payout_id": None, "amount": 0}
    assert not Payout.objects.exists() and stripe_standin.requests == {}


def test_a_transfer_that_timed_out_but_went_through_is_found_not_made_again(
    stripe_standin, last_week, staff
):
    job = payout_job(last_week)
    Job.objects.filter(pk=job.pk).update(max_attempts=1)
    stripe_standin.fail_next("slow", path="transfers", delay=3)  # past the SDK's 2 s timeout
    run_job(job.pk)
    payout = Payout.objects.get()
    assert payout.status == "failed" and payout.failures == 1
    wait_until(lambda: stripe_standin.transfers, what="the transfer")  # made; we never heard
    assert len(stripe_standin.transfers) == 1
    letter = DeadLetter.objects.get(job=job)
    run_job(deadletter_retry(dead_letter_id=letter.pk, user=staff).pk)
    payout.refresh_from_db()
    assert payout.status == "paid" and len(stripe_standin.transfers) == 1
    assert list(stripe_standin.transfers) == [payout.stripe_transfer_id]
