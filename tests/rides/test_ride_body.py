"""A ride's answer, built from the ride as loaded, as the OpenAPI schema describes it."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest

from bimride.jobs.engine.enqueue import enqueue
from rides.models import Ride
from rides.serializers import ride_bodies, ride_body
from tests.factories import DriverFactory, RideFactory, UserFactory

pytestmark = pytest.mark.django_db

AT = datetime(2026, 5, 4, 3, 2, 1, 123456, tzinfo=UTC)


def test_a_completed_rides_body():
    driver = DriverFactory(name="Dana")
    ride = RideFactory(
        status="completed", driver=driver, accepted_at=AT, started_at=AT, completed_at=AT,
        distance_km=Decimal("4.2"), duration_min=14, fare_amount=1174, estimated_fare=1500,
        currency="usd", payment_status="captured", receipt_status="sent",
        charges={"authorized": 1500, "captured": 1174, "released": 326, "settled": True},
    )  # fmt: skip
    job = enqueue("rides.match_ride", {"ride_id": ride.pk})
    body = ride_body(ride, viewer=ride.rider.user)
    assert body == {
        "id": ride.pk,
        "status": "completed",
        "rider": {"id": ride.rider.pk, "name": ride.rider.name},
        "driver": {"id": driver.pk, "name": "Dana"},
        "pickup": {"lat": 52.52, "lng": 13.405},
        "dropoff": {"lat": 52.50, "lng": 13.45},
        "requested_at": ride.requested_at.isoformat().replace("+00:00", "Z"),
        "accepted_at": "2026-05-04T03:02:01.123456Z",
        "started_at": "2026-05-04T03:02:01.123456Z",
        "completed_at": "2026-05-04T03:02:01.123456Z",
        "cancelled_at": None,
        "distance_km": "4.20",
        "duration_min": 14,
        "estimated_fare": {"amount": 1500, "currency": "usd"},
        "fare": {"amount": 1174, "currency": "usd"},
        "payment_status": "captured",
        "receipt_status": "sent",
        "jobs": [{"id": job.pk, "name": "rides.match_ride", "state": "queued"}],
        "money": {
            "currency": "usd",
            "estimated_fare": 1500,
            "fare": 1174,
            "fare_lines": [
                {"label": "base", "amount": 250},
                {"label": "distance", "amount": 504},
                {"label": "time", "amount": 420},
            ],
            "promo_code": None,
            "discount": 0,
            "total_due": 1174,
            "authorized": 1500,
            "captured": 1174,
            "released": 326,
            "extra_charged": 0,
            "waived": 0,
            "cancellation_fee": 0,
            "refunded": 0,
            "settled": True,
            "charged": 1174,
            "net_paid": 1174,
        },
    }


def test_the_money_is_the_riders_and_staffs_not_the_drivers():
    ride = RideFactory(status="accepted", driver=DriverFactory())
    assert ride_body(ride, viewer=ride.driver.user)["money"] is None
    assert ride_body(ride, viewer=UserFactory(is_staff=True))["money"]["estimated_fare"] > 0
    assert ride_body(ride, viewer=ride.rider.user)["money"]["total_due"] is None


def test_a_requested_rides_body_has_no_driver_fare_or_jobs():
    ride = RideFactory()
    body = ride_body(ride, viewer=ride.rider.user)
    assert body["driver"] is None and body["fare"] is None and body["distance_km"] is None
    assert body["accepted_at"] is None and body["jobs"] == []


def test_a_page_of_bodies_reads_every_rides_jobs_at_once(django_assert_num_queries):
    made = [RideFactory() for _ in range(3)]
    jobs = [enqueue("rides.match_ride", {"ride_id": ride.pk}) for ride in made]
    loaded = Ride.objects.select_related("rider", "driver", "promo__promo")
    rides = list(loaded.filter(pk__in=[ride.pk for ride in made]).order_by("pk"))
    staff = UserFactory(is_staff=True)
    with django_assert_num_queries(1):
        bodies = ride_bodies(rides, viewer=staff)
    assert [body["jobs"][0]["id"] for body in bodies] == [job.pk for job in jobs]
