"""Payments fixtures: rides in each state, workers that talk to the Stripe stand-in."""

from decimal import Decimal

import pytest
from django.utils import timezone

from bimride.jobs.models import Job
from payments.models import Payment
from rides.models import Ride
from tests.factories import DriverFactory, RideFactory

PICKUP = {"lat": 52.52, "lng": 13.405}
DROPOFF = {"lat": 52.50, "lng": 13.45}
# A fare of 250 + 360 + 300 = 910, below the estimate (1138) of PICKUP to DROPOFF.
COMPLETE_BODY = {"distance_km": "3.00", "duration_min": 10}


@pytest.fixture
def payment_workers(start_cluster, stripe_standin):
    """Start a `critical` cluster whose workers talk to the stand-in (extra env allowed)."""

    def start(workers: int = 2, **env):
        stripe = {"STRIPE_API_KEY": "sk_test_standin", "STRIPE_API_BASE": stripe_standin.api_base}
        stripe["STRIPE_TIMEOUT"] = "2"
        return start_cluster("critical", workers=workers, **(stripe | env))

    return start


def ride_in(status: str, *, rider=None, driver=None, **fields) -> Ride:
    """A ride in `status` with the timestamps (and fare) a ride in that state has."""
    now = timezone.now()
    values: dict = {"status": status, "estimated_fare": 1500}
    if status in ("accepted", "in_progress", "completed") or driver is not None:
        values.update(driver=driver or DriverFactory(), accepted_at=now)
    if status in ("in_progress", "completed"):
        values["started_at"] = now
    if status == "completed":
        values.update(
            completed_at=now, distance_km=Decimal("4.20"), duration_min=14, fare_amount=1174
        )
    if status == "cancelled":
        values["cancelled_at"] = now
    if rider is not None:
        values["rider"] = rider
    return RideFactory(**(values | fields))


def captured_payment_in(intent: str = "pi_test_1") -> Payment:
    """A completed ride's payment, captured at its final fare under Stripe intent `intent`."""
    ride = ride_in("completed")
    return Payment.objects.create(
        ride=ride,
        rider=ride.rider,
        amount=1500,
        amount_captured=1174,
        currency="usd",
        status="captured",
        stripe_payment_intent_id=intent,
    )


def payment_of(ride: Ride, kind: str = "ride") -> Payment | None:
    return Payment.objects.filter(ride_id=ride.pk, kind=kind).first()


def status_of(ride: Ride, kind: str = "ride") -> str | None:
    payment = payment_of(ride, kind)
    return payment.status if payment else None


def jobs_named(name: str):
    return Job.objects.filter(name=name).order_by("id")
