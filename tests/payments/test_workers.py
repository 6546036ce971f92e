"""Payments end to end through real `qcluster` workers and the Stripe stand-in."""

import os
import signal
from datetime import timedelta

import pytest
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.relay import relay
from bimride.jobs.models import DeadLetter, Job
from payments import services, tasks
from payments.models import Payment, Payout, StripeAccount
from rides.models import Ride
from tests.conftest import client_for, wait_until
from tests.factories import DriverFactory
from tests.payments.conftest import (
    COMPLETE_BODY,
    DROPOFF,
    PICKUP,
    jobs_named,
    ride_in,
    status_of,
)

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


def request_ride(as_rider) -> Ride:
    response = as_rider.post("/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF})
    assert response.status_code == 201, response.content
    return Ride.objects.get(pk=response.json()["id"])


def drive(ride: Ride, driver) -> None:
    as_driver = client_for(driver.user)
    for step in ("accept", "start"):
        assert as_driver.post(f"/api/rides/{ride.pk}/{step}").status_code == 200
    response = as_driver.post(f"/api/rides/{ride.pk}/complete", COMPLETE_BODY)
    assert response.status_code == 200


def job_state(job: Job) -> str:
    return Job.objects.values_list("state", flat=True).get(pk=job.pk)


def test_a_ride_is_authorised_on_request_and_captured_once_on_completion(
    payment_workers, stripe_standin, as_rider, driver
):
    payment_workers()
    ride = request_ride(as_rider)
    wait_until(lambda: status_of(ride) == "authorized", what="the authorisation")
    drive(ride, driver)
    wait_until(lambda: status_of(ride) == "captured", what="the capture")
    payment = Payment.objects.get(ride=ride)
    assert payment.amount == ride.estimated_fare == 1138 and payment.amount_captured == 910
    assert stripe_standin.captures(payment.stripe_payment_intent_id) == 1
    ride.refresh_from_db()
    assert ride.payment_status == "captured"
    body = as_rider.get(f"/api/rides/{ride.pk}").json()
    assert body["payment_status"] == "captured"
    assert {"payments.authorize_payment", "payments.capture_payment"} <= {
        j["name"] for j in body["jobs"]
    }


def test_cancelling_before_pickup_releases_the_authorisation(
    payment_workers, stripe_standin, as_rider
):
    payment_workers()
    ride = request_ride(as_rider)
    wait_until(lambda: status_of(ride) == "authorized", what="the authorisation")
    assert as_rider.post(f"/api/rides/{ride.pk}/cancel", {}).status_code == 200
    wait_until(lambda: status_of(ride) == "released", what="the release")
    [intent] = stripe_standin.intents_of(ride_id=ride.pk)
    assert intent["status"] == "canceled" and stripe_standin.charges == 0


def test_a_declined_card_is_dead_lettered_with_stripes_code(
    payment_workers, stripe_standin, as_rider
):
    payment_workers()
    stripe_standin.fail_next("decline", path="payment_intents")
    ride = request_ride(as_rider)
    job = jobs_named("payments.authorize_payment").get()
    wait_until(lambda: job_state(job) == "dead", what="the authorisation to die")
    letter = DeadLetter.objects.get(job=job)
    assert letter.attempts == 1 and letter.error_class == "PaymentDeclined"
    assert "card_declined" in letter.error_message
    ride.refresh_from_db()
    assert ride.payment_status == "failed" and status_of(ride) == "failed"
    assert ride.events.filter(note__contains="card_declined").exists()
    assert jobs_named("notifications.send_payment_failed").count() == 1


def test_a_rate_limit_snoozes_and_a_server_error_retries_until_the_authorisation_succeeds(
    payment_workers, stripe_standin, as_rider
):
    payment_workers()
    stripe_standin.fail_next("429", path="payment_intents")
    stripe_standin.fail_next("500", path="payment_intents")
    ride = request_ride(as_rider)
    wait_until(lambda: status_of(ride) == "authorized", what="the authorisation")
    job = jobs_named("payments.authorize_payment").get()
    assert (job.attempts, job.snoozes, job.state) == (2, 1, "succeeded")  # a 429 uses no attempt
    states = list(job.events.values_list("state", flat=True))
    assert states.count("retrying") == 1 and states.count("snoozed") == 1
    assert len(stripe_standin.intents_of(ride_id=ride.pk)) == 1


def test_a_worker_killed_after_stripe_captured_does_not_capture_twice(
    payment_workers, stripe_standin, as_rider, driver
):
    """Stripe captures, then the worker dies before it records the answer (the stand-in holds
    the answer back for 5 s, well within the SDK's timeout). The re-run sends the same
    Idempotency-Key and gets Stripe's stored answer: one capture."""
    ride = request_ride(as_rider)
    services.payment_authorize(ride_id=ride.pk, source="test")
    stripe_standin.fail_next("hold", path="capture", delay=5)
    payment_workers(workers=1, STRIPE_TIMEOUT="15")
    drive(ride, driver)
    job = jobs_named("payments.capture_payment").get()
    assert stripe_standin.captured.wait(timeout=20), "Stripe never saw the capture"
    wait_until(lambda: Job.objects.get(pk=job.pk).worker, what="the job to be claimed")
    job.refresh_from_db()
    os.kill(int(job.worker.rsplit(":", 1)[1]), signal.SIGKILL)
    assert status_of(ride) == "authorized"  # the answer was never recorded
    # The lease (timeout 30 s + grace) would run out in 31 s; let it have run out now. The
    # relay, scheduled every minute in production, hands the orphan back to the queue.
    Job.objects.filter(pk=job.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    def rescued():
        relay()
        return status_of(ride) == "captured"

    wait_until(rescued, timeout=30, interval=0.5, what="the orphan to be rescued")
    wait_until(lambda: job_state(job) == "succeeded", what="the job to record its success")
    job.refresh_from_db()
    payment = Payment.objects.get(ride=ride)
    assert job.attempts == 2 and job.state == "succeeded"
    assert stripe_standin.captures(payment.stripe_payment_intent_id) == 1
    assert stripe_standin.replays >= 1
    assert stripe_standin.idempotency_keys[f"capture:{payment.pk}"] == 2
    assert payment.amount_captured == 910


def test_the_weekly_payout_batch_twice_through_workers_transfers_once_per_driver(
    payment_workers, start_cluster, stripe_standin, settings
):
    settings.PAYOUT_MIN_RIDES, settings.PAYOUT_PER_RIDE = 1, 150
    env = {"PAYOUT_MIN_RIDES": "1", "PAYOUT_PER_RIDE": "150"}
    payment_workers(**env)
    start_cluster("bulk", workers=1, STRIPE_API_BASE=stripe_standin.api_base, **env)
    drivers = [DriverFactory() for _ in range(3)]
    moment = timezone.now() - timedelta(days=7)
    for driver in drivers:
        ride_in("completed", driver=driver, completed_at=moment)
    week = services.payout_week_of()
    for _ in range(2):
        batch = enqueue(tasks.run_weekly_payouts.name, {})
        wait_until(lambda b=batch: job_state(b) == "succeeded", what="the payout batch")
        wait_until(lambda: Payout.objects.filter(status="paid").count() == 3, what="three payouts")
    assert Payout.objects.filter(week=week).count() == 3
    transfers = sorted((t["destination"], t["amount"]) for t in stripe_standin.transfers.values())
    accounts = StripeAccount.objects.filter(driver__in=drivers).values_list("account_id", flat=True)
    assert transfers == sorted((account, 150) for account in accounts)
