"""Sign-in protection in layers, on every way in (the admin, the browsable API's sign-in,
POST /api/auth/token): the account from one address, the address at a much higher figure, the
account from anywhere as a slowdown its owner gets past from a known address (staff: a lock);
strangers' failures never lock an innocent account; every lock and lift is audited."""

from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.conf import settings
from django.test import Client
from rest_framework.test import APIClient

from bimride.access.models import KnownAddress, SignInEvent
from tests.access.conftest import WAYS, sign_in, signed_in
from tests.conftest import client_for, give_authenticator, totp_now, verified_client
from tests.factories import PASSWORD, RiderFactory, UserFactory

pytestmark = pytest.mark.django_db
ATTACKER, OFFICE, HOME, NAT = "203.0.113.7", "198.51.100.20", "192.0.2.200", "100.64.0.1"
RIDER_WAYS = ["browsable_api", "token"]  # the admin's sign-in is for staff only


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


def strangers(n: int) -> list[str]:
    return [f"203.0.{i // 250}.{i % 250 + 1}" for i in range(n)]


def locks() -> list[str]:
    return list(SignInEvent.objects.filter(kind="locked_out").values_list("lock", flat=True))


@pytest.fixture
def staff_user():
    return UserFactory(is_staff=True)


@pytest.fixture
def owner():
    """A rider who signed in from home before (so home is a known address)."""
    user = RiderFactory().user
    assert signed_in("token", sign_in("token", user.username, PASSWORD, ip=HOME))
    return user


# --- 1. the account from one address -------------------------------------------------------------
@pytest.mark.parametrize("way", RIDER_WAYS)
def test_guessing_at_an_account_from_one_address_locks_that_pair_only(way, owner):
    answers = [sign_in(way, owner.username, f"guess-{i}", ip=ATTACKER) for i in range(limit())]
    assert [r.status_code for r in answers[:-1]] == [400 if way == "token" else 200] * (limit() - 1)
    assert_locked_out(way, answers[-1])
    # The right password from the guesser's address is refused unchecked...
    assert_locked_out(way, sign_in(way, owner.username, PASSWORD, ip=ATTACKER))
    # ...while the owner signs in from anywhere else, and others from the guesser's address.
    assert signed_in(way, sign_in(way, owner.username, PASSWORD, ip=OFFICE))
    assert signed_in(way, sign_in(way, RiderFactory().user.username, PASSWORD, ip=ATTACKER))
    assert locks() == ["account_address", "account_address"]


# --- strangers' failures never lock an innocent account ------------------------------------------
def guess_from_the_owners_address_at_other_accounts(owner) -> str:
    # by the form: the token endpoint's throttle (THROTTLE_AUTH) would slow a script there
    for i in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT - 1):
        sign_in("browsable_api", f"made-up-{i}@example.com", "guess", ip=NAT)
    return NAT


def guess_at_the_account_from_fewer_addresses_than_its_limit(owner) -> str:
    for address in strangers(settings.LOGIN_ACCOUNT_FAILURE_LIMIT - 1):
        sign_in("token", owner.username, "guess", ip=address)
    return OFFICE  # a new address for the owner


def guess_at_the_account_from_a_botnet(owner) -> str:
    for address in strangers(3 * settings.LOGIN_ACCOUNT_FAILURE_LIMIT):
        sign_in("token", owner.username, "guess", ip=address)
    return HOME  # where the owner signed in before


def lock_the_account_out_of_other_addresses(owner) -> str:
    for address in (ATTACKER, OFFICE):
        for _ in range(limit()):
            sign_in("token", owner.username, "guess", ip=address)
    return HOME


@pytest.mark.parametrize(
    "strangers_do",
    [
        guess_from_the_owners_address_at_other_accounts,
        guess_at_the_account_from_fewer_addresses_than_its_limit,
        guess_at_the_account_from_a_botnet,
        lock_the_account_out_of_other_addresses,
    ],
)
@pytest.mark.parametrize("way", RIDER_WAYS)
def test_strangers_failures_never_lock_an_innocent_account(way, owner, strangers_do):
    address = strangers_do(owner)
    assert AccessAttempt.objects.exists()
    assert signed_in(way, sign_in(way, owner.username, PASSWORD, ip=address))


# --- 2. the address, at any accounts -------------------------------------------------------------
def test_an_address_is_locked_at_its_own_higher_limit_on_sign_in_only(owner):
    assert 20 * limit() <= settings.LOGIN_ADDRESS_FAILURE_LIMIT  # the documented sizing
    rider_at_nat = RiderFactory().user
    answers = [
        sign_in("browsable_api", f"made-up-{i}@example.com", "guess", ip=NAT)
        for i in range(settings.LOGIN_ADDRESS_FAILURE_LIMIT)
    ]
    assert {r.status_code for r in answers[:-1]} == {200}
    assert_locked_out("browsable_api", answers[-1])
    for way in WAYS:  # every way in, for every account, from that address
        assert_locked_out(way, sign_in(way, rider_at_nat.username, PASSWORD, ip=NAT))
    # Only signing in: a rider already signed in there goes on using the API.
    signed_in_rider = client_for(rider_at_nat)
    signed_in_rider.defaults["REMOTE_ADDR"] = NAT
    assert signed_in_rider.get("/api/rides").status_code == 200
    assert APIClient(REMOTE_ADDR=NAT).post("/api/auth/register", {}).status_code == 400
    # Other addresses are untouched.
    assert signed_in("token", sign_in("token", rider_at_nat.username, PASSWORD, ip=OFFICE))
    assert set(locks()) == {"address"}


# --- 3. the account, from any addresses ----------------------------------------------------------
@pytest.mark.parametrize("way", RIDER_WAYS)
def test_an_account_guessed_from_many_addresses_slows_down_except_where_its_owner_signed_in(
    way, owner
):
    addresses = strangers(settings.LOGIN_ACCOUNT_FAILURE_LIMIT)
    answers = [sign_in(way, owner.username, "guess", ip=a) for a in addresses]
    assert_locked_out(way, answers[-1])
    assert not any(signed_in(way, r) for r in answers)
    # Slowed: a new address is refused, even with the right password...
    assert_locked_out(way, sign_in(way, owner.username, PASSWORD, ip=OFFICE))
    # ...the owner's known address is not.
    assert signed_in(way, sign_in(way, owner.username, PASSWORD, ip=HOME))
    assert locks() == ["account", "account"]

    # An address unused for LOGIN_KNOWN_ADDRESS_DAYS is no longer known.
    long_ago = settings.LOGIN_KNOWN_ADDRESS_DAYS + 1
    KnownAddress.objects.filter(user=owner).update(
        last_signed_in_at=KnownAddress.objects.get(user=owner, ip_address=HOME).last_signed_in_at
        - timedelta(days=long_ago)
    )
    assert_locked_out(way, sign_in(way, owner.username, PASSWORD, ip=HOME))
    # The slowdown lapses with the strangers' failures.
    lapse_counted_failures()
    assert signed_in(way, sign_in(way, owner.username, PASSWORD, ip=OFFICE))


def test_a_success_remembers_the_address_once_and_forgets_stale_ones(owner):
    stale = KnownAddress.objects.create(
        user=owner,
        ip_address=OFFICE,
        last_signed_in_at=KnownAddress.objects.get().last_signed_in_at - timedelta(days=400),
    )
    for _ in range(2):
        assert signed_in("token", sign_in("token", owner.username, PASSWORD, ip=HOME))
    assert list(KnownAddress.objects.values_list("ip_address", flat=True)) == [HOME]
    assert not KnownAddress.objects.filter(pk=stale.pk).exists()


# --- staff keep the stricter rules ---------------------------------------------------------------
@pytest.mark.parametrize("way", WAYS)
def test_a_staff_account_is_locked_after_the_limit_from_any_addresses_known_or_not(way, staff_user):
    assert signed_in(way, sign_in(way, staff_user.username, PASSWORD, ip=OFFICE))
    answers = [
        sign_in(way, staff_user.username, "wrong", ip=f"192.0.2.{i}") for i in range(limit())
    ]
    assert [r.status_code for r in answers[:-1]] == [400 if way == "token" else 200] * (limit() - 1)
    assert_locked_out(way, answers[-1])

    # The right password from the staff user's known address is refused too, unchecked.
    assert_locked_out(way, sign_in(way, staff_user.username, PASSWORD, ip=OFFICE))
    # Others sign in from that address: the account is locked, not the address.
    assert signed_in(way, sign_in(way, UserFactory(is_staff=True).username, PASSWORD, ip=OFFICE))
    assert locks() == ["account", "account"]


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


def lapse_counted_failures() -> None:
    past = settings.AXES_COOLOFF_TIME + timedelta(seconds=1)
    for attempt in AccessAttempt.objects.all():
        AccessAttempt.objects.filter(pk=attempt.pk).update(attempt_time=attempt.attempt_time - past)


def test_the_lock_lapses_after_the_cool_off(staff_user):
    for i in range(limit()):
        sign_in("admin", staff_user.username, "wrong", ip=f"192.0.2.{i}")
    assert_locked_out("admin", sign_in("admin", staff_user.username, PASSWORD))
    lapse_counted_failures()
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
    # Every lift is audited: whose failures, from where, how many, and by whom.
    unlocked = SignInEvent.objects.filter(kind="unlocked").order_by("ip_address")
    assert [(e.username, e.ip_address, e.by) for e in unlocked] == [
        (staff_user.username, f"192.0.2.{i}", staff) for i in range(limit())
    ]
    assert unlocked[0].reason == "lifted 1 failures" and unlocked[0].user == staff_user
    page = ops.get("/admin/access/signinevent/?kind=unlocked").content.decode()
    assert page.count(staff_user.username) >= limit()


def test_staff_see_every_lock_by_layer_in_the_admin(staff, owner):
    for address in strangers(settings.LOGIN_ACCOUNT_FAILURE_LIMIT):
        sign_in("token", owner.username, "guess", ip=address)
    sign_in("token", owner.username, PASSWORD, ip=OFFICE)
    ops = verified_client(staff)

    page = ops.get("/admin/access/signinevent/?lock=account").content.decode()
    assert page.count(owner.username) == 2  # the failure that locked, the refusal
    assert "account, any addresses" in page


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
