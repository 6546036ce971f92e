"""Fixtures: users and API clients per role, the provider stand-ins, real `qcluster` processes."""

import os
import sys
import time
from urllib.parse import quote

import pytest
from django.core.cache import cache
from django.db import connection
from django.test import Client
from django_otp import DEVICE_ID_SESSION_KEY
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from rest_framework.test import APIClient

from bimride.authentication import tokens
from devtools.email_standin import EmailStandin
from devtools.fcm_standin import FcmStandin
from devtools.postmark_standin import PostmarkStandin
from devtools.sendgrid_standin import SendGridStandin
from devtools.stripe_standin import StripeStandin
from devtools.supervisor import ROOT, Process
from tests.factories import DriverFactory, RiderFactory, UserFactory


def wait_until(predicate, *, timeout: float = 20.0, interval: float = 0.05, what: str = ""):
    """Poll `predicate` until it returns a truthy value; fail after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            description = what() if callable(what) else what or predicate
            raise AssertionError(f"timed out after {timeout}s waiting for {description}")
        time.sleep(interval)


@pytest.fixture(autouse=True)
def _fresh_throttles():
    cache.clear()
    tokens.forget_all()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    """Factories make hundreds of users; what is under test is never the hash itself."""
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


def client_for(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {user.auth_token.key}")
    client.user = user
    return client


@pytest.fixture
def rider(db):
    return RiderFactory()


@pytest.fixture
def other_rider(db):
    return RiderFactory()


@pytest.fixture
def driver(db):
    return DriverFactory()


@pytest.fixture
def other_driver(db):
    return DriverFactory()


@pytest.fixture
def staff(db):
    return UserFactory(is_staff=True, is_superuser=True)


def give_authenticator(user) -> TOTPDevice:
    """Enrol `user` in the second factor: a confirmed authenticator (read codes with totp_now)."""
    return TOTPDevice.objects.create(user=user, name="authenticator", confirmed=True)


def totp_now(device: TOTPDevice) -> str:
    """The code the device's authenticator app shows now."""
    totp = TOTP(device.bin_key, device.step, device.t0, device.digits, device.drift)
    return f"{totp.token():0{device.digits}d}"


def verified_client(user) -> Client:
    """A browser session of `user` signed in with the second factor (a device is enrolled)."""
    device = TOTPDevice.objects.filter(user=user, confirmed=True).first() or give_authenticator(
        user
    )
    client = Client()
    client.force_login(user)
    session = client.session
    session[DEVICE_ID_SESSION_KEY] = device.persistent_id  # what django_otp.login() stores
    session.save()
    return client


@pytest.fixture
def staff_otp_client(staff) -> Client:
    """The admin as staff signed in with password and second factor, as production requires."""
    return verified_client(staff)


@pytest.fixture
def otp_required(settings):
    """Production's rule: every staff user signs in with the second factor."""
    settings.STAFF_OTP_REQUIRED = True


@pytest.fixture
def anon() -> APIClient:
    return APIClient()


@pytest.fixture
def as_rider(rider) -> APIClient:
    return client_for(rider.user)


@pytest.fixture
def as_driver(driver) -> APIClient:
    return client_for(driver.user)


@pytest.fixture
def as_staff(staff) -> APIClient:
    return client_for(staff)


def database_url() -> str:
    """The URL of the database the tests use (pytest-django's test database)."""
    s = connection.settings_dict
    auth = quote(s["USER"] or "") + (f":{quote(s['PASSWORD'])}" if s.get("PASSWORD") else "")
    if not s["HOST"] or s["HOST"].startswith("/"):
        return f"postgresql://{auth}@/{s['NAME']}?host={quote(s['HOST'] or '/tmp')}"
    return f"postgresql://{auth}@{s['HOST']}:{s['PORT'] or 5432}/{s['NAME']}"


def _listen_bypassing_the_pooler() -> dict[str, str]:
    """Through the pooler, workers LISTEN on a direct connection, as deployed
    (docs/deploying.md); a test passes JOB_LISTEN_DATABASE_URL="" to see them poll instead."""
    from tests.pooler import direct_database_url, pooled

    return {"JOB_LISTEN_DATABASE_URL": direct_database_url()} if pooled() else {}


class Cluster(Process):
    """One `manage.py qcluster` process (sentinel, pusher, monitor and workers) for a queue."""

    def __init__(self, queue: str, workers: int, env: dict):
        self.queue = queue
        super().__init__(
            f"qcluster-{queue}",
            [sys.executable, "manage.py", "qcluster"],
            {
                "DATABASE_URL": database_url(),
                "Q_CLUSTER_NAME": queue,
                f"Q_WORKERS_{queue.upper()}": str(workers),
                "JOB_RETRY_SCALE": "0.01",
                "JOB_LEASE_GRACE_SECONDS": "1",
                "JOB_EXTRA_MODULES": "tests.jobtypes",
                "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
                **_listen_bypassing_the_pooler(),
                **env,
            },
            log=ROOT / ".data" / f"qcluster-{queue}-{os.getpid()}.log",
        )


@pytest.fixture
def stripe_standin(settings):
    """A Stripe stand-in on 127.0.0.1; this process's SDK talks to it."""
    with StripeStandin() as standin:
        settings.STRIPE_API_KEY = "sk_test_standin"
        settings.STRIPE_API_BASE = standin.api_base
        settings.STRIPE_TIMEOUT = 2.0
        yield standin


@pytest.fixture
def sendgrid_standin():
    """A SendGrid v3 stand-in on 127.0.0.1, answering 202 until told otherwise."""
    with SendGridStandin() as standin:
        yield standin


@pytest.fixture
def postmark_standin():
    """A Postmark stand-in on 127.0.0.1, answering 200 until told otherwise."""
    with PostmarkStandin() as standin:
        yield standin


@pytest.fixture
def fcm_standin(settings):
    """An FCM stand-in on 127.0.0.1 (OAuth token exchange and messages:send); this process's
    settings point at it, and `start_cluster(..., **fcm_standin.settings())` points workers."""
    with FcmStandin() as standin:
        for name, value in standin.settings().items():
            setattr(settings, name, value)
        settings.FCM_TIMEOUT = (2.0, 2.0)
        yield standin


EMAIL_STANDINS = {"postmark": PostmarkStandin, "sendgrid": SendGridStandin}


@pytest.fixture(params=list(EMAIL_STANDINS))
def email_standin(request) -> EmailStandin:
    """The stand-in of each email provider in turn: the default (Postmark), then SendGrid. A
    test using it runs once per provider."""
    with EMAIL_STANDINS[request.param]() as standin:
        yield standin


@pytest.fixture(scope="session")
def shared_stripe_standin():
    """One Stripe stand-in for every worker a test starts, as `make run` provides."""
    with StripeStandin() as standin:
        yield standin


@pytest.fixture
def start_cluster(transactional_db, shared_stripe_standin):
    """Start `qcluster` processes against the test database; all stopped at teardown."""
    clusters: list[Cluster] = []
    stripe = {"STRIPE_API_BASE": shared_stripe_standin.api_base, "STRIPE_TIMEOUT": "2"}

    def start(queue: str = "default", workers: int = 2, **env) -> Cluster:
        cluster = Cluster(queue, workers, {k: str(v) for k, v in (stripe | env).items()})
        clusters.append(cluster)
        return cluster

    yield start
    for cluster in clusters:
        cluster.stop()


@pytest.fixture
def qcluster(start_cluster):
    """One worker process per queue, as `make run` starts them."""
    return [start_cluster(queue) for queue in ("critical", "default", "bulk")]


import tests.jobtypes  # noqa: F401,E402 - registers the test job types in-process
