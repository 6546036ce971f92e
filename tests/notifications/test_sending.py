"""Sending: each email job alone, then through run_job for claims, retries and dead letters.

The handlers talk to the real anymail backend of each provider pointed at its local stand-in
(`provider`: every such test runs for Postmark, the default, and for SendGrid), or to Django's
in-memory backend (`mail.outbox`) where the provider does not matter.
"""

import pytest
from django.core import mail
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue, publish
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.testing import perform_job
from notifications.models import Notification, Suppression
from payments.events import PaymentFailed, RefundSucceeded
from rides import services as rides
from rides.models import Ride
from tests.factories import DriverFactory, RideFactory
from tests.notifications.conftest import completed_ride

RECEIPT = "notifications.send_receipt"


@pytest.fixture(autouse=True)
def _no_back_off(settings):
    settings.JOB_RETRY_SCALE = 0  # a retry is due at once: run_job can run it straight away


def receipt_of(ride: Ride) -> Notification:
    return Notification.objects.get(key=f"receipt:{ride.pk}")


def receipt_status(ride: Ride) -> str:
    return Ride.objects.values_list("receipt_status", flat=True).get(pk=ride.pk)


def state(job: Job) -> str:
    job.refresh_from_db()
    return job.state


# --- the receipt status -------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_completed_ride_owes_its_receipt_from_the_completion_on_until_it_is_sent():
    driver = DriverFactory(available=True)
    ride = RideFactory(status="in_progress", driver=driver)
    completed = rides.ride_complete(ride_id=ride.pk, driver=driver, distance_km=4, duration_min=14)
    assert completed.receipt_status == "pending" and receipt_status(ride) == "pending"
    rides.ride_set_payment_status(ride_id=ride.pk, charges=completed.charges | {"settled": True})
    perform_job(RECEIPT, {"ride_id": ride.pk})
    assert receipt_status(ride) == "sent"


# --- the handlers alone -------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_receipt_handler_sends_once_and_marks_the_ride_sent(ride):
    result = perform_job(RECEIPT, {"ride_id": ride.pk})

    assert len(mail.outbox) == 1 and mail.outbox[0].to == [ride.rider.user.email]
    notification = receipt_of(ride)
    assert result == {
        "status": "sent",
        "notification_id": notification.pk,
        "message_id": notification.message_id,
    }
    assert notification.status == "sent" and notification.attempts == 1
    assert notification.message_id == mail.outbox[0].extra_headers["Message-ID"]
    assert notification.template == "receipt" and notification.recipient == ride.rider.user.email
    assert notification.subject == mail.outbox[0].subject
    assert notification.job_id == Job.objects.get(name=RECEIPT).pk
    assert notification.sent_at and notification.last_attempt_at
    assert receipt_status(ride) == "sent"

    again = perform_job(RECEIPT, {"ride_id": ride.pk})
    assert again["already_sent"] is True and len(mail.outbox) == 1


@pytest.mark.django_db
def test_through_the_provider_the_log_keeps_the_id_tracking_events_carry(ride, provider):
    perform_job(RECEIPT, {"ride_id": ride.pk})

    [received] = provider.received()
    assert received.to == ride.rider.user.email and received.tracking_id
    assert "$11.74" in received.text and "$11.74" in received.html
    assert receipt_of(ride).message_id == received.tracking_id
    assert receipt_status(ride) == "sent"


@pytest.mark.django_db
def test_two_receipt_jobs_for_one_ride_send_one_receipt(ride, provider):
    first, second = (enqueue(RECEIPT, {"ride_id": ride.pk}) for _ in range(2))
    run_job(first.pk)
    run_job(second.pk)
    assert state(first) == state(second) == "succeeded"
    assert provider.count(to=ride.rider.user.email) == 1
    assert second.result["already_sent"] is True


# --- run_job: re-runs, retries, dead letters ----------------------------------------------------
@pytest.mark.django_db
def test_a_rerun_after_the_provider_accepted_does_not_send_again(ride, provider):
    job = enqueue(RECEIPT, {"ride_id": ride.pk})
    run_job(job.pk)
    # The worker "died" after the log recorded the message id, before the job's success.
    Job.objects.filter(pk=job.pk).update(state="running", lease_expires_at=timezone.now())
    run_job(job.pk)

    job.refresh_from_db()
    assert job.state == "succeeded" and job.attempts == 2 and job.result["already_sent"]
    assert provider.count() == 1 and receipt_of(ride).attempts == 1


@pytest.mark.django_db
def test_a_provider_outage_is_retried_until_the_receipt_is_sent_once(ride, provider):
    provider.mode = "503"
    job = enqueue(RECEIPT, {"ride_id": ride.pk})
    run_job(job.pk)

    assert state(job) == "retrying"
    notification = receipt_of(ride)
    assert notification.status == "queued" and notification.attempts == 1
    assert "503" in notification.error and receipt_status(ride) == "pending"

    provider.mode = "ok"
    run_job(job.pk)
    assert state(job) == "succeeded" and job.attempts == 2
    notification.refresh_from_db()
    assert notification.status == "sent" and notification.attempts == 2 and not notification.error
    assert provider.count() == 1 and provider.refused[503] == 1
    assert receipt_status(ride) == "sent"


@pytest.mark.django_db
def test_a_provider_slower_than_the_timeout_is_a_failed_attempt(ride, provider, settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "REQUESTS_TIMEOUT": (1, 0.2)}
    provider.mode, provider.delay = "slow", 0.5
    job = enqueue(RECEIPT, {"ride_id": ride.pk})
    run_job(job.pk)

    assert state(job) == "retrying"
    notification = receipt_of(ride)
    assert notification.status == "queued" and "timed out" in notification.error.lower()


@pytest.mark.django_db
def test_a_rejected_address_is_dead_lettered_at_once_and_the_receipt_marked_failed(ride, provider):
    provider.reject_addresses = {ride.rider.user.email}
    job = enqueue(RECEIPT, {"ride_id": ride.pk})
    run_job(job.pk)

    assert state(job) == "dead" and job.attempts == 1
    letter = DeadLetter.objects.get(job=job)
    assert letter.error_class == "EmailRejected"
    assert provider.rejection_text in letter.error_message
    notification = receipt_of(ride)
    assert notification.status == "failed" and provider.rejection_text in notification.error
    assert receipt_status(ride) == "failed" and provider.count() == 0


@pytest.mark.django_db
def test_when_retries_run_out_the_notification_is_marked_failed(ride, provider):
    provider.mode = "503"
    job = enqueue(RECEIPT, {"ride_id": ride.pk})
    for _ in range(job.max_attempts):
        run_job(job.pk)

    assert state(job) == "dead" and job.attempts == job.max_attempts == 10
    assert DeadLetter.objects.get(job=job).error_class.startswith("AnymailRequestsAPIError")
    notification = receipt_of(ride)
    assert notification.status == "failed" and notification.attempts == 10
    assert "503" in notification.error and receipt_status(ride) == "failed"


@pytest.mark.django_db
def test_retrying_the_dead_letter_of_a_failed_email_sends_it(ride, provider):
    provider.reject_addresses = {ride.rider.user.email}
    job = enqueue(RECEIPT, {"ride_id": ride.pk})
    run_job(job.pk)
    provider.reject_addresses = set()  # the rider fixed the address with the provider

    retry = enqueue(RECEIPT, DeadLetter.objects.get(job=job).payload)
    run_job(retry.pk)
    assert state(retry) == "succeeded" and provider.count() == 1
    assert receipt_of(ride).status == "sent" and receipt_status(ride) == "sent"


@pytest.mark.django_db
def test_a_suppressed_address_is_skipped_with_the_reason_not_failed(ride, provider):
    Suppression.objects.create(email=ride.rider.user.email.lower(), reason="bounced")
    job = enqueue(RECEIPT, {"ride_id": ride.pk})
    run_job(job.pk)

    assert state(job) == "succeeded"
    assert job.result["skipped"] == f"{ride.rider.user.email} is suppressed (bounced)"
    assert receipt_of(ride).status == "suppressed" and receipt_status(ride) == "failed"
    assert provider.count() == 0 and not DeadLetter.objects.exists()


# --- the other emails, from their events ----------------------------------------------------------
@pytest.mark.django_db
def test_registering_sends_the_welcome_email(provider):
    user, _ = rides.account_register(
        email="new@example.com", password="a-long-enough-pw-42", name="Neo", role="rider"
    )
    [job] = Job.objects.filter(name="notifications.send_welcome")
    run_job(job.pk)
    assert state(job) == "succeeded"
    assert provider.count(to="new@example.com", subject="Welcome to BimRide") == 1
    assert Notification.objects.get(key=f"welcome:{user.pk}").status == "sent"


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("cancel", "subject"),
    [
        ("driver", "Your driver cancelled your ride"),
        ("expiry", "No driver was available for your ride"),
        ("rider", None),
    ],
)
def test_the_rider_hears_of_a_cancellation_by_the_driver_or_expiry_only(
    rider, driver, provider, settings, cancel, subject
):
    settings.RIDE_EXPIRY = timezone.timedelta(0)
    status = "requested" if cancel == "expiry" else "accepted"
    ride = completed_ride(rider, status=status, driver=None if cancel == "expiry" else driver)
    if cancel == "expiry":
        rides.ride_expire(ride_id=ride.pk)
    else:
        user = driver.user if cancel == "driver" else rider.user
        rides.ride_cancel(ride_id=ride.pk, user=user)
    [job] = Job.objects.filter(name="notifications.send_ride_cancelled")
    run_job(job.pk)

    assert state(job) == "succeeded"
    if subject is None:
        assert job.result == {"skipped": "cancelled by rider: the rider is not told"}
        assert provider.count() == 0 and not Notification.objects.exists()
    else:
        assert provider.count(to=rider.user.email, subject=subject) == 1
        assert Notification.objects.get(key=f"ride_cancelled:{ride.pk}").status == "sent"


@pytest.mark.django_db
def test_a_failed_payment_is_told_once_per_payment(ride, provider):
    payload = {"payment_id": 7, "ride_id": ride.pk, "amount": 1174, "currency": "usd"}
    jobs = publish(PaymentFailed(**payload, reason="Your card was declined."))
    jobs += publish(PaymentFailed(**payload))
    for job in jobs:
        run_job(job.pk)

    subject = f"Your payment for ride {ride.pk} did not go through"
    assert provider.count(to=ride.rider.user.email, subject=subject) == 1
    [received] = provider.received()
    assert "$11.74" in received.text and "Your card was declined." in received.text
    assert Notification.objects.get(key="payment_failed:7").status == "sent"


@pytest.mark.django_db
def test_a_refund_is_confirmed_once_per_refund(ride, provider):
    payload = {"refund_id": 3, "ride_id": ride.pk, "amount": 500, "currency": "usd"}
    for job in publish(RefundSucceeded(**payload)) + publish(RefundSucceeded(**payload)):
        run_job(job.pk)

    assert provider.count(subject="Your refund of $5.00 is on its way") == 1
    assert "refund 3" in provider.received()[0].text
    assert Notification.objects.get(key="refund_confirmation:3").status == "sent"


@pytest.mark.django_db
def test_an_email_about_a_missing_ride_is_dead_lettered_without_retries(provider):
    job = enqueue(RECEIPT, {"ride_id": 10**9})
    run_job(job.pk)
    assert state(job) == "dead" and job.attempts == 1
    assert DeadLetter.objects.get(job=job).error_class == "NotFound"
