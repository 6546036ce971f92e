"""Notification fixtures: anymail pointed at the SendGrid stand-in, rides with receipts."""

from decimal import Decimal

import pytest
from django.utils import timezone

from devtools.sendgrid_standin import SendGridStandin
from rides.models import Ride
from tests.factories import DriverFactory, RideFactory

SENDGRID_BACKEND = "anymail.backends.sendgrid.EmailBackend"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Each factory user hashes a password: PBKDF2 would cost 0.3 s per user, MD5 nothing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def sendgrid(settings, sendgrid_standin) -> SendGridStandin:
    """This process sends through anymail's SendGrid backend to the stand-in."""
    settings.EMAIL_BACKEND = SENDGRID_BACKEND
    settings.ANYMAIL = {
        **settings.ANYMAIL,
        "SENDGRID_API_KEY": "test",
        "SENDGRID_API_URL": sendgrid_standin.api_url,
        "REQUESTS_TIMEOUT": (2, 5),
    }
    return sendgrid_standin


def completed_ride(rider, **fields) -> Ride:
    """A ride of `rider` completed a moment ago: 4.20 km in 14 min, a fare of $11.74."""
    now = timezone.now()
    values = {
        "status": "completed",
        "driver": DriverFactory(),
        "accepted_at": now,
        "started_at": now,
        "completed_at": now,
        "distance_km": Decimal("4.20"),
        "duration_min": 14,
        "fare_amount": 250 + 504 + 14 * 30,
        "receipt_status": "pending",
    }
    return RideFactory(rider=rider, **(values | fields))


@pytest.fixture
def ride(rider) -> Ride:
    return completed_ride(rider)
