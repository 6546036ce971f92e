"""Staff sign in with a second factor: required in production (STAFF_OTP_REQUIRED), enrolled
from the admin with recovery codes, optional in development until a device is enrolled."""

import re

import pytest
from django.conf import settings
from django.test import Client
from django_otp.plugins.otp_totp.models import TOTPDevice

from bimride.access.otp import recovery_codes_renew
from tests.access.conftest import WAYS, sign_in, signed_in
from tests.conftest import give_authenticator, totp_now, verified_client
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db


@pytest.fixture
def enrolled():
    """A staff user with an authenticator and a set of recovery codes."""
    user = UserFactory(is_staff=True)
    user.device = give_authenticator(user)
    user.recovery_codes = recovery_codes_renew(user)
    return user


def test_production_settings_require_the_second_factor_for_staff():
    from tests.test_settings import manage

    result = manage(
        "shell",
        "-c",
        "from django.conf import settings; print(settings.STAFF_OTP_REQUIRED)",
        SECRET_KEY="x" * 50,
        ALLOWED_HOSTS="api.bimride.example",
        POSTMARK_SERVER_TOKEN="pm-server-token",  # whichever email provider is the default
        SENDGRID_API_KEY="SG.test",
        ANYMAIL_WEBHOOK_SECRET="hooks:secret",
        STRIPE_API_KEY="sk_test_x",
        STRIPE_WEBHOOK_SECRET="whsec_x",
    )
    assert result.stdout.split()[-1:] == ["True"], result.stderr
    assert settings.STAFF_OTP_REQUIRED is False  # development (and these tests) by default


@pytest.mark.parametrize("way", WAYS)
def test_staff_without_the_code_are_refused(way, enrolled, otp_required):
    response = sign_in(way, enrolled.username, PASSWORD)
    assert not signed_in(way, response)
    if way == "token":
        assert response.status_code == 400 and response.json()["error"]["code"] == "otp_required"
    else:
        assert "Enter the 6-digit code from your authenticator app" in response.content.decode()


@pytest.mark.parametrize("way", WAYS)
def test_staff_with_a_wrong_code_are_refused(way, enrolled, otp_required):
    response = sign_in(way, enrolled.username, PASSWORD, code="123456")
    assert not signed_in(way, response)
    if way == "token":
        assert response.json()["error"]["code"] == "invalid_otp"


@pytest.mark.parametrize("way", WAYS)
def test_staff_sign_in_with_the_code_from_their_app(way, enrolled, otp_required):
    response = sign_in(way, enrolled.username, PASSWORD, code=totp_now(enrolled.device))
    assert signed_in(way, response)
    if way == "admin":
        assert response.client.get("/admin/").status_code == 200  # the session is verified


def test_a_recovery_code_signs_in_once(enrolled, otp_required):
    code = enrolled.recovery_codes[0]
    first = sign_in("admin", enrolled.username, PASSWORD, code=code.upper())
    assert signed_in("admin", first) and first.client.get("/admin/").status_code == 200

    assert not signed_in("admin", sign_in("admin", enrolled.username, PASSWORD, code=code))


def test_a_password_alone_opens_nothing_for_staff_in_production(otp_required):
    staff_user = UserFactory(is_staff=True, is_superuser=True)
    client = Client()
    client.force_login(staff_user)

    assert client.get("/admin/jobs/deadletter/").status_code == 302
    api = client.get("/api/ops/queues")  # nor does the session open the staff API
    assert api.status_code in (401, 403)
    # Its token is refused until the account has enrolled.
    token = sign_in("token", staff_user.username, PASSWORD)
    assert token.json()["error"]["code"] == "otp_enrolment_required"
    # A verified session opens both.
    verified = verified_client(staff_user)
    assert verified.get("/admin/jobs/deadletter/").status_code == 200
    assert verified.get("/api/ops/queues").status_code == 200


def test_staff_without_a_device_are_guided_to_enrol_then_get_recovery_codes(otp_required):
    staff_user = UserFactory(is_staff=True, is_superuser=True)
    first = sign_in("admin", staff_user.username, PASSWORD)
    client = first.client
    assert signed_in("admin", first)  # by password: enough to enrol, nothing else
    assert client.get("/admin/").url.startswith("/admin/login/")
    assert client.get("/admin/login/").url == "/admin/access/enrol/"

    page = client.get("/admin/access/enrol/")
    html = page.content.decode()
    assert page.status_code == 200 and "<svg" in html
    secret = re.search(r'<code id="otp-secret">([A-Z2-7]+)</code>', html).group(1)
    device = TOTPDevice.objects.get(user=staff_user, confirmed=False)
    assert secret and device.config_url.startswith("otpauth://totp/BimRide")

    wrong = client.post("/admin/access/enrol/", {"code": "000000"})
    assert "That code is not valid" in wrong.content.decode()
    device.throttle_reset()  # django-otp waits a second after a wrong code: as a person would
    done = client.post("/admin/access/enrol/", {"code": totp_now(device)})
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", done.content.decode())
    assert len(codes) == 10
    assert TOTPDevice.objects.get(user=staff_user).confirmed
    assert client.get("/admin/").status_code == 200  # verified by the enrolment itself


def test_development_guides_password_only_staff_to_enrol():
    staff_user = UserFactory(is_staff=True, is_superuser=True)
    response = sign_in("admin", staff_user.username, PASSWORD)
    assert signed_in("admin", response)

    index = response.client.get("/admin/").content.decode()
    assert 'id="otp-enrol-banner"' in index and "/admin/access/enrol/" in index


def test_development_asks_enrolled_staff_for_their_code(enrolled):
    assert not signed_in("admin", sign_in("admin", enrolled.username, PASSWORD))
    assert signed_in(
        "admin", sign_in("admin", enrolled.username, PASSWORD, code=totp_now(enrolled.device))
    )


def test_riders_and_drivers_need_no_second_factor(rider, otp_required):
    assert signed_in("token", sign_in("token", rider.user.username, PASSWORD))


def test_staff_renew_their_recovery_codes(enrolled):
    client = verified_client(enrolled)
    page = client.get("/admin/access/recovery-codes/")
    assert "You have 10 unused recovery codes" in page.content.decode()
    renewed = client.post("/admin/access/recovery-codes/")
    codes = re.findall(r"<li><code>([a-z2-7]{8})</code></li>", renewed.content.decode())
    assert len(codes) == 10 and not set(codes) & set(enrolled.recovery_codes)


def test_staff_sessions_end_after_the_idle_time(staff, rider):
    client = verified_client(staff)
    client.get("/admin/")
    assert client.session.get_expiry_age() == settings.STAFF_SESSION_IDLE.total_seconds()
    rider_client = Client()
    rider_client.force_login(rider.user)
    rider_client.get("/api/rides")
    assert rider_client.session.get_expiry_age() == settings.SESSION_COOKIE_AGE


def test_a_staff_tokens_requests_write_no_session(as_staff):
    from django.contrib.sessions.models import Session

    assert as_staff.get("/api/ops/queues").status_code == 200
    assert settings.SESSION_COOKIE_NAME not in as_staff.cookies
    assert not Session.objects.exists()


def test_a_staff_token_keeps_working_once_issued(as_staff, otp_required):
    # Tokens are handed to staff only with the second factor; one issued keeps working.
    assert as_staff.get("/api/ops/queues").status_code == 200
