"""Failed sign-ins are limited per account and per address on every way in (the admin, the
browsable API's sign-in, POST /api/auth/token); a locked-out sign-in is refused plainly."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client

from bimride.access.models import SignInEvent
from tests.access.conftest import WAYS, sign_in, signed_in
from tests.conftest import give_authenticator, totp_now, verified_client
from tests.factories import PASSWORD, UserFactory

pytestmark = pytest.mark.django_db
ATTACKER, OFFICE = "203.0.113.7", "198.51.100.20"


def limit() -> int:
    return settings.AXES_FAILURE_LIMIT


def assert_locked_out(way: str, response) -> None:
    assert response.status_code == 429
    cooloff = settings.AXES_COOLOFF_TIME.total_seconds()
    assert 0 < int(response["Retry-After"]) <= cooloff
    assert not signed_in(way, response)
    if way == "token":
        error = response.json()["error"]
        assert error["code"] == "locked_out" and error["fields"] == {}
        assert error["message"].startswith("Too many failed sign-ins. Try again in")
    else:  # the sign-in form again, with the reason on it
        html = response.content.decode()
        assert 'id="login-form"' in html and "Too many failed sign-ins. Try again in 15" in html


@pytest.fixture
def staff_user():
    return UserFactory(is_staff=True)


@pytest.mark.parametrize("way", WAYS)
def test_an_account_is_locked_after_the_limit_of_failures_from_any_addresses(way, staff_user):
    answers = [
        sign_in(way, staff_user.username, "wrong", ip=f"192.0.2.{i}") for i in range(limit())
    ]
    assert [r.status_code for r in answers[:-1]] == [400 if way == "token" else 200] * (limit() - 1)
    assert_locked_out(way, answers[-1])

    # The right password from yet another address is refused too, before it is checked.
    assert_locked_out(way, sign_in(way, staff_user.username, PASSWORD, ip=OFFICE))
    # Others sign in from that address: the account is locked, not the address.
    assert signed_in(way, sign_in(way, UserFactory(is_staff=True).username, PASSWORD, ip=OFFICE))


@pytest.mark.parametrize("way", WAYS)
def test_one_address_guessing_across_accounts_locks_itself_not_the_accounts(way):
    accounts = UserFactory.create_batch(limit(), is_staff=True)
    answers = [sign_in(way, a.username, "wrong", ip=ATTACKER) for a in accounts]
    assert_locked_out(way, answers[-1])
    assert_locked_out(way, sign_in(way, UserFactory(is_staff=True).username, PASSWORD, ip=ATTACKER))

    for account in accounts:  # every account still signs in from elsewhere...
        assert signed_in(way, sign_in(way, account.username, PASSWORD, ip=OFFICE))
    # ...which does not lift the attacker's lock, and the lockout shows in the audit
    assert_locked_out(way, sign_in(way, accounts[0].username, PASSWORD, ip=ATTACKER))
    locked = SignInEvent.objects.filter(kind="locked_out", ip_address=ATTACKER)
    assert locked.count() == 3  # the failure that reached the limit, then two refusals


@pytest.mark.parametrize("way", WAYS)
def test_a_success_resets_the_count_of_the_account(way, staff_user):
    for _ in range(2):
        for _ in range(limit() - 1):
            assert not signed_in(way, sign_in(way, staff_user.username, "wrong"))
        assert signed_in(way, sign_in(way, staff_user.username, PASSWORD))
    assert not AccessAttempt.objects.filter(username=staff_user.username).exists()


def test_a_success_on_ones_own_account_does_not_forget_guesses_at_another(staff_user):
    own = UserFactory()
    for _ in range(limit() - 1):
        sign_in("token", staff_user.username, "wrong", ip=ATTACKER)
    assert signed_in("token", sign_in("token", own.username, PASSWORD, ip=ATTACKER))

    assert_locked_out("token", sign_in("token", staff_user.username, "wrong", ip=ATTACKER))


def test_the_lock_lapses_after_the_cool_off(staff_user):
    for i in range(limit()):
        sign_in("admin", staff_user.username, "wrong", ip=f"192.0.2.{i}")
    assert_locked_out("admin", sign_in("admin", staff_user.username, PASSWORD))

    past = settings.AXES_COOLOFF_TIME + timedelta(seconds=1)
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - past)

    assert signed_in("admin", sign_in("admin", staff_user.username, PASSWORD))


def test_staff_lift_a_lockout_from_the_admin(staff, staff_user):
    for i in range(limit()):
        sign_in("admin", staff_user.username, "wrong", ip=f"192.0.2.{i}")
    assert_locked_out("admin", sign_in("admin", staff_user.username, PASSWORD))
    ops = verified_client(staff)

    page = ops.get(f"/admin/axes/accessattempt/?q={staff_user.username}")
    assert page.status_code == 200 and staff_user.username in page.content.decode()
    attempts = list(AccessAttempt.objects.filter(username=staff_user.username))
    lifted = ops.post(
        "/admin/axes/accessattempt/",
        {"action": "lift_lockout", "_selected_action": [a.pk for a in attempts]},
    )

    assert lifted.status_code == 302
    assert signed_in("admin", sign_in("admin", staff_user.username, PASSWORD))


@pytest.mark.parametrize("way", WAYS)
def test_wrong_second_factor_codes_count_towards_the_lockout(way, staff_user, otp_required):
    device = give_authenticator(staff_user)
    answers = [
        sign_in(way, staff_user.username, PASSWORD, code="000000", ip=f"192.0.2.{i}")
        for i in range(limit())
    ]
    assert not any(signed_in(way, r) for r in answers)
    assert_locked_out(way, answers[-1])
    # the right password and the right code: still locked out
    assert_locked_out(way, sign_in(way, staff_user.username, PASSWORD, code=totp_now(device)))
    reasons = list(SignInEvent.objects.order_by("id").values_list("kind", "reason"))
    assert reasons == [("failure", "otp")] * (limit() - 1) + [
        ("locked_out", "otp"),  # the failure that reached the limit
        ("locked_out", "locked"),  # refused unchecked
    ]


def test_a_forwarded_for_header_is_believed_only_from_trusted_proxies(settings, staff_user):
    def guess(forwarded: str):
        client = Client(REMOTE_ADDR="10.1.1.1", HTTP_X_FORWARDED_FOR=forwarded)
        return client.post("/admin/login/", {"username": staff_user.username, "password": "x"})

    for i in range(limit()):  # a client inventing a new address each time is still one peer
        last = guess(f"192.0.2.{i}")
    assert last.status_code == 429
    assert set(AccessAttempt.objects.values_list("ip_address", flat=True)) == {"10.1.1.1"}

    AccessAttempt.objects.all().delete()
    settings.TRUSTED_PROXY_COUNT = 1  # one proxy, which appends the peer it saw
    guess("198.51.100.1, 203.0.113.9")
    assert list(AccessAttempt.objects.values_list("ip_address", flat=True)) == ["203.0.113.9"]
