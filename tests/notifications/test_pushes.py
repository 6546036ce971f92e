"""Pushes: each event's fan-out and each send alone, then through run_job for re-runs, retries
(a 429's Retry-After, an outage, a slow FCM), dead tokens, freshness and dead letters, all
against the FCM stand-in through the real FCM client (google-auth's token exchange included)."""

import json
from datetime import timedelta

import pytest
from django.db import transaction
from django.test import Client
from django.utils import timezone

from bimride.jobs import Event
from bimride.jobs.engine.enqueue import enqueue, publish
from bimride.jobs.engine.retry import PUSH_RETRY
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job, ProviderBudget
from bimride.jobs.ops.services import deadletter_retry
from notifications import pushes
from notifications.models import Device, Notification, Preference, Push
from rides.events import (
    RideAccepted,
    RideCompleted,
    RideDriverArriving,
    RideOffered,
    RideStarted,
)
from rides.models import Ride
from tests.factories import DriverFactory, RideFactory
from tests.notifications.conftest import completed_ride

pytestmark = pytest.mark.django_db

SEND = "notifications.send_push"
PHONE = "rider-phone"  # the push token of the rider's phone


@pytest.fixture(autouse=True)
def _no_back_off(settings):
    settings.JOB_RETRY_SCALE = 0  # a retry is due at once: run_job can run it straight away


def device_of(user, token: str = PHONE, locale: str = "en") -> Device:
    device, _ = pushes.device_register(user=user, token=token, platform="android", locale=locale)
    return device


def accepted_ride(rider, **fields) -> Ride:
    driver = DriverFactory(name="Ada", car="Blue Prius, B-X 1", lat=52.53, lng=13.405)
    now = timezone.now()
    values = {"status": "accepted", "driver": driver, "accepted_at": now}
    return RideFactory(rider=rider, **(values | fields))


def accepted(ride: Ride) -> dict:
    return {"ride_id": ride.pk, "driver_id": ride.driver_id}


def fan_out(event: type[Event], **payload) -> list[Job]:
    """Publish `event` and run its subscribers' jobs here; return the send jobs they made."""
    with transaction.atomic():
        jobs = publish(event(**payload))
    for job in jobs:
        run_job(job.pk)
    return list(Job.objects.filter(name=SEND).order_by("pk"))


def run_all(jobs: list[Job]) -> None:
    for job in jobs:
        run_job(job.pk)


def state(job: Job) -> str:
    return Job.objects.get(pk=job.pk).state


# --- fan-out ------------------------------------------------------------------------------------
def test_an_event_makes_one_push_and_one_job_per_active_device(rider, fcm_standin):
    phone, tablet = device_of(rider.user, "phone"), device_of(rider.user, "tablet")
    gone = device_of(rider.user, "gone")
    Device.objects.filter(pk=gone.pk).update(active=False)
    ride = accepted_ride(rider)
    jobs = fan_out(RideAccepted, **accepted(ride))
    assert len(jobs) == 2
    assert {job.idempotency_key for job in jobs} == {
        f"push:driver_assigned:{ride.pk}:{phone.pk}",
        f"push:driver_assigned:{ride.pk}:{tablet.pk}",
    }
    for job in jobs:
        assert set(job.payload) == {"push_id"}  # ids only: never a token
        assert "phone" not in json.dumps(job.payload)


def test_an_event_handled_twice_pushes_once_per_device(rider, fcm_standin):
    device_of(rider.user)
    ride = accepted_ride(rider)
    first = fan_out(RideAccepted, **accepted(ride))
    again = fan_out(RideAccepted, **accepted(ride))
    assert [j.pk for j in again] == [j.pk for j in first] and Push.objects.count() == 1
    run_all(again)
    run_all(again)
    assert len(fcm_standin.received()) == 1


def test_without_fcm_credentials_no_push_is_written(rider, settings):
    settings.FCM_CREDENTIALS_FILE = settings.FCM_CREDENTIALS_JSON = ""
    device_of(rider.user)
    assert fan_out(RideAccepted, **accepted(accepted_ride(rider))) == []
    assert not Push.objects.exists()


# --- what each push says ------------------------------------------------------------------------
def test_driver_assigned_names_the_driver_the_car_and_the_eta(rider, fcm_standin):
    device_of(rider.user)
    ride = accepted_ride(rider)  # the driver is 1.1 km away: 3 min at 25 km/h
    run_all(fan_out(RideAccepted, **accepted(ride)))
    [sent] = fcm_standin.received(token="rider-phone")
    assert sent.title == "Ada is on the way"
    assert sent.body == "Blue Prius, B-X 1, about 3 min from your pickup"
    assert sent.data == {
        "kind": "driver_assigned",
        "ride_id": str(ride.pk),
        "push_id": sent.data["push_id"],
    }
    assert sent.android["collapse_key"] == "bimride-driver_assigned"
    assert 590 <= int(sent.android["ttl"].removesuffix("s")) <= 600  # ten minutes
    assert sent.apns["headers"]["apns-collapse-id"] == "bimride-driver_assigned"
    push = Push.objects.get()
    assert push.status == "sent" and push.message_name == sent.name and push.attempts == 1


def test_a_push_is_written_in_the_devices_language(rider, fcm_standin):
    device_of(rider.user, locale="de-DE")
    ride = accepted_ride(rider, status="completed", fare_amount=1234, completed_at=timezone.now())
    run_all(fan_out(RideCompleted, ride_id=ride.pk))
    [sent] = fcm_standin.received()
    assert sent.title == "Sie sind angekommen"
    assert sent.body == "Gesamt 12,34\u00a0$. Ihre Quittung ist unterwegs."


def test_ride_completed_tells_the_total_the_rider_pays(rider, fcm_standin):
    device_of(rider.user)
    ride = accepted_ride(rider, status="completed", fare_amount=1174, completed_at=timezone.now())
    run_all(fan_out(RideCompleted, ride_id=ride.pk))
    [sent] = fcm_standin.received()
    assert sent.body == "Total $11.74. Your receipt is on its way."


# --- dead tokens --------------------------------------------------------------------------------
def test_an_unregistered_token_deactivates_the_device_at_once_without_a_retry(rider, fcm_standin):
    device = device_of(rider.user)
    fcm_standin.unregistered.add("rider-phone")
    ride = accepted_ride(rider)
    [job] = fan_out(RideAccepted, **accepted(ride))
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.attempts == 1
    assert job.result["status"] == "unregistered"
    assert not DeadLetter.objects.exists()
    device.refresh_from_db()
    assert not device.active and device.deactivated_reason == "FCM: token unregistered"
    assert Push.objects.get().status == "unregistered"
    # the next event finds no device to push to
    assert fan_out(RideStarted, ride_id=ride.pk) == [job]


def test_a_push_to_a_device_that_changed_hands_meanwhile_is_not_sent(
    rider, other_rider, fcm_standin
):
    device_of(rider.user)
    [job] = fan_out(RideAccepted, **accepted(accepted_ride(rider)))
    device_of(other_rider.user)  # the same token, registered by another account
    run_job(job.pk)
    push = Push.objects.get()
    assert push.status == "skipped" and "changed hands" in push.error
    assert fcm_standin.received() == []


def test_a_key_the_token_exchange_refuses_fails_the_push_at_once(rider, fcm_standin, settings):
    account = fcm_standin.service_account() | {"client_email": "someone@else.example"}
    settings.FCM_CREDENTIALS_JSON = json.dumps(account)
    device_of(rider.user)
    [job] = fan_out(RideAccepted, **accepted(accepted_ride(rider)))
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "dead" and job.attempts == 1 and "invalid_grant" in job.last_error
    assert Push.objects.get().status == "failed" and fcm_standin.received() == []


# --- retries ------------------------------------------------------------------------------------
def test_a_429_pauses_fcm_and_snoozes_the_push_without_using_an_attempt(rider, fcm_standin):
    device_of(rider.user)
    fcm_standin.set_mode("429", retry_after=120, times=1)
    [job] = fan_out(RideAccepted, **accepted(accepted_ride(rider)))
    before = timezone.now()
    run_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.snoozes, job.last_error) == ("queued", 0, 1, "")
    assert job.events.filter(state="snoozed", note__contains="fcm answered 429").exists()
    paused_until = ProviderBudget.objects.get(name="fcm").paused_until
    assert paused_until >= before + timedelta(seconds=119)  # FCM's Retry-After, for every push
    assert "429" in Push.objects.get().error and not DeadLetter.objects.exists()
    ProviderBudget.objects.update(paused_until=timezone.now())  # the pause is over
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    run_job(job.pk)
    assert state(job) == "succeeded" and len(fcm_standin.received()) == 1


def test_an_fcm_outage_is_retried_until_the_push_is_sent_once(rider, fcm_standin):
    device_of(rider.user)
    fcm_standin.set_mode("503")
    [job] = fan_out(RideAccepted, **accepted(accepted_ride(rider)))
    run_job(job.pk)
    run_job(job.pk)
    assert state(job) == "retrying" and fcm_standin.refused[503] == 2
    assert Push.objects.get().status == "queued" and "503" in Push.objects.get().error
    fcm_standin.set_mode("ok")
    run_job(job.pk)
    assert state(job) == "succeeded" and len(fcm_standin.received()) == 1
    assert Push.objects.get().attempts == 3


def test_an_fcm_slower_than_the_timeout_is_a_failed_attempt(rider, fcm_standin, settings):
    settings.FCM_TIMEOUT = (1.0, 0.3)
    device_of(rider.user)
    fcm_standin.set_mode("slow", delay=1.0)
    [job] = fan_out(RideAccepted, **accepted(accepted_ride(rider)))
    run_job(job.pk)
    assert state(job) == "retrying" and "timed out" in Job.objects.get(pk=job.pk).last_error


def test_when_retries_run_out_the_push_fails_and_its_dead_letter_sends_it(rider, fcm_standin):
    device_of(rider.user)
    fcm_standin.set_mode("503")
    [job] = fan_out(RideAccepted, **accepted(accepted_ride(rider)))
    for _ in range(PUSH_RETRY.max_attempts):
        run_job(job.pk)
    assert state(job) == "dead" and Push.objects.get().status == "failed"
    fcm_standin.set_mode("ok")
    retry = deadletter_retry(dead_letter_id=DeadLetter.objects.get(job=job).pk, user=None)
    run_job(retry.pk)
    assert state(retry) == "succeeded" and Push.objects.get().status == "sent"
    assert len(fcm_standin.received()) == 1


# --- freshness ----------------------------------------------------------------------------------
def test_an_arriving_push_after_the_ride_started_is_not_sent(rider, fcm_standin):
    device_of(rider.user)
    ride = accepted_ride(rider)
    [job] = fan_out(RideDriverArriving, ride_id=ride.pk)
    Ride.objects.filter(pk=ride.pk).update(status="in_progress", started_at=timezone.now())
    run_job(job.pk)
    assert state(job) == "succeeded"
    push = Push.objects.get()
    assert push.status == "stale" and "in_progress" in push.error
    assert fcm_standin.received() == [] and fcm_standin.token_requests == 0


def test_a_push_past_its_time_to_live_is_not_sent(rider, fcm_standin):
    device_of(rider.user)
    [job] = fan_out(RideDriverArriving, ride_id=accepted_ride(rider).pk)
    Push.objects.update(expires_at=timezone.now() - timedelta(seconds=1))
    run_job(job.pk)
    assert Push.objects.get().status == "expired" and fcm_standin.received() == []


def test_a_ride_offer_taken_by_another_driver_is_not_pushed(driver, fcm_standin):
    device_of(driver.user, "driver-phone")
    ride = RideFactory()
    ride.offers.create(driver=driver, distance_km=0.8)
    [job] = fan_out(RideOffered, ride_id=ride.pk, driver_id=driver.pk)
    Ride.objects.filter(pk=ride.pk).update(
        status="accepted", driver=DriverFactory(), accepted_at=timezone.now()
    )
    run_job(job.pk)
    assert Push.objects.get().status == "stale" and fcm_standin.received() == []


# --- preferences --------------------------------------------------------------------------------
def test_a_kind_turned_off_by_push_is_not_pushed_and_others_are(rider, fcm_standin):
    device_of(rider.user)
    pushes.preferences_update(user=rider.user, changes=[{"kind": "driver_arriving", "push": False}])
    ride = accepted_ride(rider)
    assert fan_out(RideDriverArriving, ride_id=ride.pk) == []
    assert len(fan_out(RideAccepted, **accepted(ride))) == 1


def test_receipts_by_email_stay_on_until_the_rider_turns_them_off(rider, settings):
    settings.EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
    ride = completed_ride(rider)
    run_job(enqueue("notifications.send_receipt", {"ride_id": ride.pk}).pk)
    assert Notification.objects.get().status == "sent"

    other = completed_ride(rider)
    Preference.objects.create(user=rider.user, kind="ride_completed", email=False)
    job = enqueue("notifications.send_receipt", {"ride_id": other.pk})
    run_job(job.pk)
    assert state(job) == "succeeded" and Notification.objects.count() == 1
    assert Ride.objects.get(pk=other.pk).receipt_status == "none"


# --- pruning and ops ----------------------------------------------------------------------------
def test_devices_unused_for_the_idle_days_are_pruned_and_their_pushes_kept(rider, settings):
    settings.PUSH_DEVICE_MAX_IDLE_DAYS = 30
    old, fresh = device_of(rider.user, "old"), device_of(rider.user, "fresh")
    Device.objects.filter(pk=old.pk).update(last_seen_at=timezone.now() - timedelta(days=31))
    push = Push.objects.create(
        key="k", kind="ride_started", device=old, collapse_key="c", expires_at=timezone.now()
    )
    job = enqueue("notifications.prune_devices", {})
    run_job(job.pk)
    assert Job.objects.get(pk=job.pk).result == {"deleted": 1}
    assert list(Device.objects.values_list("pk", flat=True)) == [fresh.pk]
    push.refresh_from_db()
    assert push.device is None


def test_the_queue_overview_counts_pushes_by_outcome(staff_otp_client, rider, fcm_standin):
    device_of(rider.user)
    fcm_standin.unregistered.add("rider-phone")
    run_all(fan_out(RideAccepted, **accepted(accepted_ride(rider))))
    response = staff_otp_client.get("/admin/jobs/job/dashboard/")
    assert response.status_code == 200
    html = response.content.decode()
    assert "Pushes by outcome, last 24 hours" in html
    assert "<td>driver_assigned</td><td>unregistered</td><td>1</td>" in html


def test_the_admin_lists_devices_and_pushes_without_their_tokens(
    staff_otp_client, rider, fcm_standin
):
    device_of(rider.user, "secret-token-123")
    run_all(fan_out(RideAccepted, **accepted(accepted_ride(rider))))
    push = Push.objects.get()
    for url in (
        "/admin/notifications/device/",
        f"/admin/notifications/device/{push.device_id}/change/",
        "/admin/notifications/push/?status__exact=sent",
        f"/admin/notifications/push/{push.pk}/change/",
    ):
        response = staff_otp_client.get(url)
        assert response.status_code == 200, url
        assert "secret-token-123" not in response.content.decode(), url
    assert "driver_assigned" in staff_otp_client.get("/admin/notifications/push/").content.decode()


def test_metrics_count_pushes_by_kind_and_outcome(rider, fcm_standin, settings):
    settings.METRICS_TOKEN = "t0ken"
    device_of(rider.user)
    device_of(rider.user, "gone-phone")
    fcm_standin.unregistered.add("gone-phone")
    run_all(fan_out(RideAccepted, **accepted(accepted_ride(rider))))
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
    for outcome in ("sent", "unregistered"):
        line = f'bimride_pushes_total{{kind="driver_assigned",outcome="{outcome}"}}'
        assert line in text


@pytest.mark.parametrize(
    ("locale", "title"),
    [
        ("de", "Ihre Fahrt hat begonnen"),
        ("de_AT", "Ihre Fahrt hat begonnen"),
        ("fr-FR", "Your ride has started"),  # not written in French: English
        ("../..", "Your ride has started"),  # not a language at all
    ],
)
def test_a_push_is_in_the_devices_language_or_english(rider, fcm_standin, locale, title):
    device_of(rider.user, locale=locale)
    ride = accepted_ride(rider, status="in_progress", started_at=timezone.now())
    run_all(fan_out(RideStarted, ride_id=ride.pk))
    assert [m.title for m in fcm_standin.received()] == [title]
