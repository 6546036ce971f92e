"""Rides API fixtures and helpers: rides in each state, the error shape, the database snapshot."""

from decimal import Decimal
from functools import cached_property

import pytest
from django.contrib.auth import get_user_model
from django.utils import timezone
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bimride.jobs.models import Job, JobEvent
from bimride.models import IdempotentRequest
from rides.models import Driver, Ride, RideEvent, RideOffer, Rider
from tests.conftest import client_for
from tests.factories import DriverFactory, RideFactory, RiderFactory, UserFactory

PICKUP = {"lat": 52.52, "lng": 13.405}
DROPOFF = {"lat": 52.50, "lng": 13.45}
RIDE_BODY = {"pickup": PICKUP, "dropoff": DROPOFF}
COMPLETE_BODY = {"distance_km": "4.20", "duration_min": 14}
COUNTED = (
    get_user_model(),
    Token,
    Rider,
    Driver,
    Ride,
    RideEvent,
    RideOffer,
    Job,
    JobEvent,
    IdempotentRequest,
)
RIDE_FIELDS = (
    "id", "status", "rider_id", "driver_id", "accepted_at", "started_at", "completed_at",
    "cancelled_at", "cancel_reason", "distance_km", "duration_min", "fare_amount",
    "payment_status", "receipt_status",
)  # fmt: skip
DRIVER_FIELDS = ("id", "available", "lat", "lng", "location_at")


def make_ride(
    status: str = "requested", *, rider: Rider | None = None, driver: Driver | None = None, **kw
) -> Ride:
    """A ride in `status` with the timestamps (and fare) a ride in that state has."""
    now = timezone.now()
    fields: dict = {"status": status}
    if status in ("accepted", "in_progress", "completed") or (status == "cancelled" and driver):
        fields.update(driver=driver or DriverFactory(), accepted_at=now)
    if status in ("in_progress", "completed"):
        fields["started_at"] = now
    if status == "completed":
        fields.update(
            completed_at=now, distance_km=Decimal("4.20"), duration_min=14, fare_amount=1174
        )
    if status == "cancelled":
        fields.update(cancelled_at=now, cancel_reason="changed my mind")
    if rider is not None:
        fields["rider"] = rider
    return RideFactory(**fields, **kw)


def db_snapshot() -> dict:
    """Row counts of everything the API writes, and the mutable state of rides and drivers."""
    return {
        "counts": {model.__name__: model.objects.count() for model in COUNTED},
        "rides": list(Ride.objects.order_by("id").values_list(*RIDE_FIELDS)),
        "drivers": list(Driver.objects.order_by("id").values_list(*DRIVER_FIELDS)),
    }


def assert_error(response, status: int, code: str | None = None) -> dict:
    """`response` has `status` and the error shape (with `code`); returns the error object."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert list(body) == ["error"], body
    error = body["error"]
    assert set(error) == {"code", "message", "fields"}, error
    assert isinstance(error["code"], str) and error["code"], error
    assert isinstance(error["message"], str) and error["message"], error
    assert isinstance(error["fields"], dict), error
    if code is not None:
        assert error["code"] == code, error
    return error


class World:
    """Everyone the permission and bad-input tables talk about, each made when first used."""

    @cached_property
    def rider_a(self) -> Rider:  # the ride's rider
        return RiderFactory()

    @cached_property
    def rider_b(self) -> Rider:  # another rider, with no rides
        return RiderFactory()

    @cached_property
    def driver(self) -> Driver:  # the ride's driver (once it has one)
        return DriverFactory()

    @cached_property
    def other_driver(self) -> Driver:  # never offered the ride
        return DriverFactory()

    @cached_property
    def offered_driver(self) -> Driver:  # offered the ride, did not take it
        return DriverFactory()

    @cached_property
    def staff(self):
        return UserFactory(is_staff=True, is_superuser=True)

    def ride(self, status: str) -> Ride:
        """A ride of rider A in `status`, taken by `driver` once accepted, offered to both."""
        driver = self.driver if status != "requested" else None
        ride = make_ride(status, rider=self.rider_a, driver=driver)
        for offered in (self.driver, self.offered_driver):
            RideOffer.objects.create(ride=ride, driver=offered, distance_km=1.5)
        return ride

    def client(self, actor: str):
        if actor == "anon":
            return APIClient()
        if actor == "staff":
            return client_for(self.staff)
        return client_for(getattr(self, actor).user)


@pytest.fixture
def world(db) -> World:
    return World()
