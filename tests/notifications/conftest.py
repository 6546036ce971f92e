"""Notification fixtures: anymail pointed at each provider's stand-in, rides with receipts."""

from decimal import Decimal

import pytest
from django.utils import timezone

from devtools.email_standin import EmailStandin
from rides.models import Ride
from tests.factories import DriverFactory, RideFactory


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Each factory user hashes a password: PBKDF2 would cost 0.3 s per user, MD5 nothing."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def send_through(settings, standin: EmailStandin) -> EmailStandin:
    """Point this process's email at `standin`, through its provider's real anymail backend."""
    env = standin.settings()
    settings.EMAIL_PROVIDER = env.pop("EMAIL_PROVIDER")
    settings.EMAIL_BACKEND = settings.EMAIL_PROVIDERS[settings.EMAIL_PROVIDER][0]
    settings.ANYMAIL = {**settings.ANYMAIL, **env, "REQUESTS_TIMEOUT": (2, 5)}
    return standin


@pytest.fixture
def provider(settings, email_standin) -> EmailStandin:
    """Each provider in turn (Postmark, the default, then SendGrid): a test using it runs
    twice, sending through that provider's anymail backend to its stand-in."""
    return send_through(settings, email_standin)


@pytest.fixture
def postmark(settings, postmark_standin) -> EmailStandin:
    """The default provider only, where which provider does not matter (the admin)."""
    return send_through(settings, postmark_standin)


def completed_ride(rider, **fields) -> Ride:
    """A ride of `rider` completed a moment ago: 4.20 km in 14 min, a fare of $11.74, taken in
    full from its authorisation (its charges settled, as payments records them)."""
    now = timezone.now()
    fare = 250 + 504 + 14 * 30
    values = {
        "status": "completed",
        "driver": DriverFactory(),
        "accepted_at": now,
        "started_at": now,
        "completed_at": now,
        "distance_km": Decimal("4.20"),
        "duration_min": 14,
        "fare_amount": fare,
        "receipt_status": "pending",
        "charges": {"authorized": fare, "captured": fare, "settled": True},
    }
    return RideFactory(rider=rider, **(values | fields))


@pytest.fixture
def ride(rider) -> Ride:
    return completed_ride(rider)
