"""A ride end to end over HTTP, first in-process, then with real workers doing the jobs."""

from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.models import Job
from rides.models import DailyRideStats, HeatmapCell, LocationPing, Ride
from tests.conftest import client_for, wait_until

PICKUP = {"lat": 52.52, "lng": 13.405}
DROPOFF = {"lat": 52.50, "lng": 13.45}
COMPLETE_BODY = {"distance_km": "4.20", "duration_min": 14}


def _ride_to_completion(as_rider, as_driver) -> dict:
    response = as_rider.post("/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF}, format="json")
    assert response.status_code == 201, response.data
    ride = response.data
    assert ride["status"] == "requested" and ride["fare"] is None
    assert {j["name"] for j in ride["jobs"]} == {"rides.match_ride", "payments.authorize_payment"}
    for step in ("accept", "start"):
        response = as_driver.post(f"/api/rides/{ride['id']}/{step}")
        assert response.status_code == 200, response.data
    response = as_driver.post(f"/api/rides/{ride['id']}/complete", COMPLETE_BODY, format="json")
    assert response.status_code == 200, response.data
    return response.data


@pytest.mark.django_db
def test_a_ride_goes_from_request_to_completion(as_rider, as_driver):
    ride = _ride_to_completion(as_rider, as_driver)

    assert ride["status"] == "completed"
    assert ride["fare"] == {"amount": 250 + 504 + 14 * 30, "currency": "usd"}
    assert ride["receipt_status"] == "pending"
    events = list(Ride.objects.get(pk=ride["id"]).events.values_list("old", "new"))
    assert events == [
        ("", "requested"),
        ("requested", "accepted"),
        ("accepted", "in_progress"),
        ("in_progress", "completed"),
    ]


def _fold() -> bool:
    """Run the analytics fold, as its every-minute schedule does (which may also run it, or find
    the ride locked by its capture and leave it to the next fold)."""
    fold = enqueue("rides.fold_ride_analytics")
    wait_until(lambda: Job.objects.get(pk=fold.pk).state == "succeeded", what="the fold")
    return True


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_completing_a_ride_sends_the_receipt_and_counts_it_once(qcluster, rider, driver):
    ride = _ride_to_completion(client_for(rider.user), client_for(driver.user))

    wait_until(
        lambda: Ride.objects.get(pk=ride["id"]).receipt_status == "sent", what="receipt sent"
    )
    wait_until(lambda: _fold() and DailyRideStats.objects.exists(), what="the ride counted")
    jobs = Job.objects.filter(subject=f"ride:{ride['id']}")
    unfinished = jobs.exclude(state="succeeded")
    wait_until(
        lambda: not unfinished.exists(),
        what=lambda: (
            "every ride job to succeed: "
            + repr(list(unfinished.values_list("name", "state", "last_error")))
        ),
    )
    _fold()  # again: counts nothing twice
    stats = DailyRideStats.objects.get()
    assert (stats.rides_completed, stats.revenue) == (1, ride["fare"]["amount"])
    assert mail.outbox == []  # sent by the worker process, not this one


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_a_ride_no_driver_accepts_expires_and_the_rider_is_told(start_cluster, rider, settings):
    settings.RIDE_EXPIRY = timedelta(seconds=1)
    start_cluster("critical", RIDE_EXPIRY_SECONDS=1)
    start_cluster("default")
    response = client_for(rider.user).post("/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF})
    ride_id = response.json()["id"]
    wait_until(
        lambda: Ride.objects.filter(
            pk=ride_id, requested_at__lte=timezone.now() - settings.RIDE_EXPIRY
        ).exists(),
        what="the ride to be due to expire",
    )
    # Its matching and authorisation done: the sweep skips a ride locked meanwhile (the next
    # sweep, a minute later, would take it).
    ride_jobs = Job.objects.filter(subject=f"ride:{ride_id}")
    wait_until(lambda: not ride_jobs.exclude(state="succeeded").exists(), what="the ride's jobs")
    sweep = enqueue("rides.expire_rides")  # what the every-minute schedule runs

    wait_until(
        lambda: Ride.objects.get(pk=ride_id).status == "cancelled",
        what=lambda: f"the ride to expire; the sweep: {Job.objects.filter(pk=sweep.pk).values()}",
    )
    ride = Ride.objects.get(pk=ride_id)
    assert ride.cancel_reason == "expired"
    assert list(ride.events.values_list("new", "actor")) == [
        ("requested", rider.user.pk),
        ("cancelled", None),
    ]
    notice = Job.objects.filter(name="notifications.send_ride_cancelled", subject=f"ride:{ride_id}")
    wait_until(lambda: notice.filter(state="succeeded").exists(), what="the rider to be told")


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_location_pings_feed_the_heatmap_through_the_bulk_queue(start_cluster, driver):
    start_cluster("bulk")
    as_driver = client_for(driver.user)
    for lat in (52.5201, 52.5202, 52.5301):
        response = as_driver.post("/api/drivers/me/location", {"lat": lat, "lng": 13.405})
        assert response.status_code == 202
    fold = enqueue("rides.fold_location_pings")  # what the every-minute schedule runs
    wait_until(lambda: Job.objects.get(pk=fold.pk).state == "succeeded", what="the fold")
    assert Job.objects.get(pk=fold.pk).result == {"folded": 3}
    assert sorted(HeatmapCell.objects.values_list("pings", flat=True)) == [1, 2]
    assert not LocationPing.objects.exists()
    driver.refresh_from_db()
    assert (driver.lat, driver.lng) == (52.5301, 13.405)
