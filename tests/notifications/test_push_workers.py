"""Pushes end to end: the apps' HTTP calls, real `qcluster` workers and the FCM stand-in, reached
through the real FCM client. Every kind reaches the right phone once, in its words; a dead
token deactivates its device; a push that stopped being true is not sent; preferences hold;
an FCM outage delays pushes without losing or doubling any."""

import pytest
from django.db import transaction

from bimride.jobs.engine.enqueue import enqueue, publish
from bimride.jobs.models import Job
from notifications.models import Device, Notification, Push
from payments.events import PaymentFailed, RefundSucceeded
from rides.models import Ride
from tests.conftest import client_for, wait_until

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

PICKUP = {"lat": 52.52, "lng": 13.405}
DROPOFF = {"lat": 52.50, "lng": 13.45}
NEAR_BY = {"lat": 52.53, "lng": 13.405}  # 1.1 km north of the pickup: 3 min at 25 km/h
AT_PICKUP = {"lat": 52.5205, "lng": 13.405}
COMPLETE_BODY = {"distance_km": "4.20", "duration_min": 14}
RIDER_PHONE, DRIVER_PHONE = "rider-phone-token", "driver-phone-token"


@pytest.fixture
def workers(start_cluster, fcm_standin):
    """A `critical` and a `default` worker pushing to the stand-in."""
    env = {**fcm_standin.settings(), "FCM_READ_TIMEOUT": "2"}
    return [start_cluster(queue, **env) for queue in ("critical", "default")]


@pytest.fixture
def phones(rider, driver):
    """The rider's and the driver's app, each with its phone registered over the API."""
    driver.car = "Blue Prius, B-X 1"
    driver.save(update_fields=["car"])
    as_rider, as_driver = client_for(rider.user), client_for(driver.user)
    for client, token in ((as_rider, RIDER_PHONE), (as_driver, DRIVER_PHONE)):
        body = {"token": token, "platform": "android", "locale": "en-US"}
        assert client.post("/api/devices", body, format="json").status_code == 201
    assert as_driver.post("/api/drivers/me/location", NEAR_BY, format="json").status_code == 202
    return as_rider, as_driver


def pushes_to(standin, token: str) -> list[str]:
    return [f"{m.title} | {m.body}" for m in standin.received(token=token)]


def wait_for_push(standin, token: str, count: int, what: str) -> list[str]:
    wait_until(
        lambda: len(standin.received(token=token)) >= count,
        timeout=30,
        what=lambda: (
            f"{what}; received: {pushes_to(standin, token)}; pushes: "
            + repr(list(Push.objects.values_list("kind", "status", "error")))
        ),
    )
    return pushes_to(standin, token)


def request_ride(as_rider) -> int:
    response = as_rider.post("/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF}, format="json")
    assert response.status_code == 201, response.data
    return response.data["id"]


def test_every_kind_reaches_its_phone_once_in_its_words(workers, fcm_standin, phones, driver):
    as_rider, as_driver = phones
    ride_id = request_ride(as_rider)
    [offer] = wait_for_push(fcm_standin, DRIVER_PHONE, 1, "the ride offered to the driver")
    assert offer.startswith("New ride request | Pickup 1.1 km away.")

    trace = "trace-accept-0001"
    response = as_driver.post(f"/api/rides/{ride_id}/accept", HTTP_X_REQUEST_ID=trace)
    assert response.status_code == 200
    pushed = wait_for_push(fcm_standin, RIDER_PHONE, 1, "the driver assigned")
    assert pushed[0] == (
        f"{driver.name} is on the way | Blue Prius, B-X 1, about 3 min from your pickup"
    )
    assigned = Push.objects.get(kind="driver_assigned")
    assert assigned.trace_id == trace  # from the accept request to FCM's answer
    assert Job.objects.get(pk=assigned.job_id).trace_id == trace

    as_driver.post("/api/drivers/me/location", AT_PICKUP, format="json")
    enqueue("rides.notice_driver_arrivals")  # what the every-minute schedule runs
    pushed = wait_for_push(fcm_standin, RIDER_PHONE, 2, "the driver arriving")
    assert (
        pushed[1]
        == f"Your driver is arriving | {driver.name} (Blue Prius, B-X 1) is almost at your pickup."
    )

    assert as_driver.post(f"/api/rides/{ride_id}/start").status_code == 200
    pushed = wait_for_push(fcm_standin, RIDER_PHONE, 3, "the ride started")
    assert pushed[2] == f"Your ride has started | Enjoy the ride with {driver.name}."

    response = as_driver.post(f"/api/rides/{ride_id}/complete", COMPLETE_BODY, format="json")
    fare = response.data["fare"]["amount"]
    pushed = wait_for_push(fcm_standin, RIDER_PHONE, 4, "the ride completed")
    total = f"${fare // 100}.{fare % 100:02d}"
    assert pushed[3] == f"You have arrived | Total {total}. Your receipt is on its way."

    with transaction.atomic():  # as payments publishes them
        publish(PaymentFailed(ride_id=ride_id, payment_id=7001, amount=1999, currency="usd"))
        publish(RefundSucceeded(ride_id=ride_id, refund_id=8001, amount=500, currency="usd"))
    pushed = wait_for_push(fcm_standin, RIDER_PHONE, 6, "the payment failed and the refund")
    assert set(pushed[4:]) == {
        "Your payment did not go through | We could not charge $19.99 for ride"
        f" {ride_id}. Please check your card.",
        "Refund issued | $5.00 is on its way back to your card.",
    }

    second = request_ride(as_rider)
    wait_for_push(fcm_standin, DRIVER_PHONE, 2, "the second ride offered")
    assert as_driver.post(f"/api/rides/{second}/accept").status_code == 200
    wait_for_push(fcm_standin, RIDER_PHONE, 7, "the second ride's driver assigned")
    assert as_rider.post(f"/api/rides/{second}/cancel", {}, format="json").status_code == 200
    pushed = wait_for_push(fcm_standin, DRIVER_PHONE, 3, "the rider's cancellation")
    assert pushed[2] == (
        f"Ride cancelled | The rider cancelled ride {second}. You are free for the next one."
    )

    wait_until(lambda: not Job.objects.exclude(state="succeeded").exists(), what="all jobs done")
    assert len(fcm_standin.received(token=RIDER_PHONE)) == 7  # 6 + the second ride's driver
    assert len(fcm_standin.received(token=DRIVER_PHONE)) == 3
    assert Push.objects.filter(status="sent").count() == 10
    # each worker process exchanged its key once, then reused the access token
    assert fcm_standin.token_requests < 10


def test_a_dead_token_deactivates_its_device_at_once(workers, fcm_standin, phones):
    as_rider, as_driver = phones
    fcm_standin.unregistered.add(RIDER_PHONE)  # the rider uninstalled the app
    ride_id = request_ride(as_rider)
    wait_for_push(fcm_standin, DRIVER_PHONE, 1, "the offer")
    as_driver.post(f"/api/rides/{ride_id}/accept")
    device = Device.objects.filter(token=RIDER_PHONE)
    wait_until(lambda: not device.get().active, what="the rider's device deactivated")
    push = Push.objects.get(kind="driver_assigned")
    assert push.status == "unregistered"
    job = Job.objects.get(pk=push.job_id)
    assert job.state == "succeeded" and job.attempts == 1  # no retry
    assert as_rider.get("/api/devices").data["results"] == []

    assert as_driver.post(f"/api/rides/{ride_id}/start").status_code == 200
    wait_until(
        lambda: Job.objects.filter(
            name="notifications.push_ride_started", state="succeeded"
        ).exists(),
        what="the started event",
    )
    assert not Push.objects.filter(kind="ride_started").exists()  # nothing to a dead device


def test_an_arriving_push_held_up_until_the_ride_started_is_not_sent(
    start_cluster, fcm_standin, phones
):
    env = {**fcm_standin.settings(), "JOB_RETRY_SCALE": "0.1"}
    for queue in ("critical", "default"):
        start_cluster(queue, **env)
    as_rider, as_driver = phones
    ride_id = request_ride(as_rider)
    wait_for_push(fcm_standin, DRIVER_PHONE, 1, "the offer")
    as_driver.post(f"/api/rides/{ride_id}/accept")
    wait_for_push(fcm_standin, RIDER_PHONE, 1, "the driver assigned")

    fcm_standin.set_mode("503")  # FCM goes down
    as_driver.post("/api/drivers/me/location", AT_PICKUP, format="json")
    enqueue("rides.notice_driver_arrivals")
    arriving = Push.objects.filter(kind="driver_arriving")
    failed = arriving.filter(error__contains="503")  # recorded once FCM answered the attempt
    wait_until(failed.exists, what="an arriving attempt refused by FCM")
    assert as_driver.post(f"/api/rides/{ride_id}/start").status_code == 200
    fcm_standin.set_mode("ok")  # FCM is back: the rider is in the car by now

    pushed = wait_for_push(fcm_standin, RIDER_PHONE, 2, "the ride started")
    wait_until(
        lambda: arriving.get().status == "stale", timeout=30, what="the arriving push given up"
    )
    assert len(pushed) == 2 and pushed[1].startswith("Your ride has started |")
    assert "in_progress" in arriving.get().error
    assert len(fcm_standin.received(token=RIDER_PHONE)) == 2  # never "arriving"


def test_preferences_silence_what_the_rider_turned_off(workers, fcm_standin, phones, rider):
    as_rider, as_driver = phones
    off = {
        "preferences": [
            {"kind": "driver_assigned", "push": False},
            {"kind": "ride_completed", "email": False},
        ]
    }
    assert as_rider.patch("/api/me/notifications", off, format="json").status_code == 200
    ride_id = request_ride(as_rider)
    wait_for_push(fcm_standin, DRIVER_PHONE, 1, "the offer")
    for step in ("accept", "start"):
        assert as_driver.post(f"/api/rides/{ride_id}/{step}").status_code == 200
    wait_for_push(fcm_standin, RIDER_PHONE, 1, "started")  # before it stops being true
    as_driver.post(f"/api/rides/{ride_id}/complete", COMPLETE_BODY, format="json")
    pushed = wait_for_push(fcm_standin, RIDER_PHONE, 2, "started and completed")
    wait_until(lambda: not Job.objects.exclude(state="succeeded").exists(), what="all jobs done")
    assert [p.split(" | ")[0] for p in pushes_to(fcm_standin, RIDER_PHONE)] == [
        "Your ride has started",
        "You have arrived",
    ]
    assert pushed == pushes_to(fcm_standin, RIDER_PHONE)
    assert not Notification.objects.filter(template="receipt").exists()  # no receipt email
    assert Ride.objects.get(pk=ride_id).receipt_status == "none"


def test_an_fcm_outage_delays_pushes_without_losing_or_doubling_any(
    start_cluster, fcm_standin, phones
):
    env = {**fcm_standin.settings(), "JOB_RETRY_SCALE": "0.2"}
    for queue in ("critical", "default"):
        start_cluster(queue, **env)
    as_rider, as_driver = phones
    fcm_standin.set_mode("503", times=4)  # the next four sends fail, then FCM is back
    ride_id = request_ride(as_rider)
    wait_for_push(fcm_standin, DRIVER_PHONE, 1, "the offer, after the outage")
    for count, step in enumerate(("accept", "start"), start=1):
        assert as_driver.post(f"/api/rides/{ride_id}/{step}").status_code == 200
        wait_for_push(fcm_standin, RIDER_PHONE, count, f"the push after {step}")
    wait_until(lambda: not Job.objects.exclude(state="succeeded").exists(), what="all jobs done")
    assert fcm_standin.refused[503] == 4
    assert len(fcm_standin.received(token=RIDER_PHONE)) == 2
    assert len(fcm_standin.received(token=DRIVER_PHONE)) == 1
    assert Push.objects.filter(status="sent").count() == 3
    assert sum(Push.objects.values_list("attempts", flat=True)) == 3 + 4
