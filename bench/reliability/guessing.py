"""Scenario 5's guessing run: hundreds of wrong passwords against one staff account, through
every way in, from one address and then from many, against the live web server; then the
innocent riders: strangers' failures from a rider's own (carrier-NAT) address, and a botnet at a
rider's account, must not keep either rider from signing in.

The addresses are real: each guesser binds its connections to its own loopback address
(127.0.0.0/8 is all loopback on Linux), so the server's REMOTE_ADDR is what it keys on, with
no header the app would have to be told to trust.
"""

import re
from collections import Counter

import requests
from axes.models import AccessAttempt
from axes.utils import reset as lift_lockout
from django.conf import settings
from django_otp.oath import TOTP
from django_otp.plugins.otp_totp.models import TOTPDevice
from requests.adapters import HTTPAdapter
from rest_framework.authtoken.models import Token

from bimride.access.models import SignInEvent

WAYS = ("/admin/login/", "/api-auth/login/", "/api/auth/token")
ONE_ADDRESS = "127.0.0.2"  # not 127.0.0.1: the other scenarios' clients stay unlocked
MANY_ADDRESSES = [f"127.0.1.{i}" for i in range(1, 51)]
GUESSES = 200  # per run
NAT = "127.0.5.1"  # strangers and an innocent rider behind one address
HOME, NEW_PLACE = "127.0.5.2", "127.0.5.3"  # the botnet's target signed in from home before
BOTNET = [f"127.0.6.{i}" for i in range(1, 61)]


class SourceAddressAdapter(HTTPAdapter):
    """Connections from a chosen local address."""

    def __init__(self, address: str):
        self.address = address
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.address, 0)
        super().init_poolmanager(*args, **kwargs)


def session_from(address: str) -> requests.Session:
    session = requests.Session()
    session.mount("http://", SourceAddressAdapter(address))
    # A new connection per request: a guesser idle past gunicorn's keep-alive would otherwise
    # reuse a connection the server has just closed (a reset, not an answer).
    session.headers["Connection"] = "close"
    return session


def attempt(base: str, session: requests.Session, way: str, email: str, password: str, code=""):
    """One sign-in; returns (status, error code or "", signed in?)."""
    if way == "/api/auth/token":
        body = {"email": email, "password": password, **({"otp_token": code} if code else {})}
        response = session.post(base + way, json=body, timeout=30)
        error = response.json().get("error", {}).get("code", "") if response.content else ""
        return response.status_code, error, response.status_code == 200
    page = session.get(base + way, timeout=30)
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
    response = session.post(
        base + way,
        data={
            "username": email,
            "password": password,
            "otp_token": code,
            "csrfmiddlewaretoken": csrf.group(1) if csrf else "",
            "next": "/admin/",
        },
        headers={"Referer": base + way},
        timeout=30,
        allow_redirects=False,
    )
    locked = "Too many failed sign-ins" in response.text
    return response.status_code, "locked_out" if locked else "", response.status_code == 302


def guessing(base: str, staff, password: str) -> tuple[list[str], list[str], int]:
    """Two runs of GUESSES wrong passwords at `staff` (enrolled in the second factor here):
    from one address, then spread over 50. Returns notes, failures and 5xx count."""
    device = TOTPDevice.objects.create(user=staff, name="authenticator", confirmed=True)
    email, notes, failures, fives = staff.username, [], [], 0
    for label, addresses in (("one address", [ONE_ADDRESS]), ("50 addresses", MANY_ADDRESSES)):
        lift_lockout(username=email)  # each run starts from a clean count, as after an unlock
        first_event = SignInEvent.objects.order_by("-id").values_list("id", flat=True).first() or 0
        sessions = {address: session_from(address) for address in addresses}
        answers: Counter = Counter()
        signed_in = 0
        for n in range(GUESSES):
            address = addresses[n % len(addresses)]
            status, error, ok = attempt(
                base, sessions[address], WAYS[n % 3], email, f"guess-{n}", code="000000"
            )
            answers[(status, error)] += 1
            signed_in += ok
            fives += status >= 500
        # The right password and the right code, from a fresh address: still refused.
        code = f"{TOTP(device.bin_key).token():06d}"
        status, error, ok = attempt(base, session_from("127.0.2.1"), WAYS[0], email, password, code)
        events = Counter(
            SignInEvent.objects.filter(id__gt=first_event, username=email).values_list(
                "kind", flat=True
            )
        )
        counted = sum(
            AccessAttempt.objects.filter(username=email).values_list(
                "failures_since_start", flat=True
            )
        )
        notes.append(
            f"guessing from {label}: {GUESSES} wrong passwords over the admin, the browsable "
            f"API and the token endpoint -> {signed_in} sign-ins; {counted} checked and counted "
            f"before the lock, answers {_summary(answers)}; audit {dict(events)}; the right "
            f"password and code afterwards: {status} {error or ('signed in' if ok else '')}"
        )
        if signed_in or ok:
            failures.append(f"guessing from {label}: {signed_in + ok} sign-in(s) got through")
        if counted > settings.AXES_FAILURE_LIMIT or not events.get("locked_out"):
            failures.append(f"guessing from {label}: {counted} guesses counted, lockouts {events}")
        if status != 429:
            failures.append(f"guessing from {label}: locked account answered {status}")
    # Lifted by staff, the owner signs in again with password and code.
    lift_lockout(username=email)
    code = f"{TOTP(device.bin_key).token():06d}"
    status, _, ok = attempt(base, session_from("127.0.2.2"), WAYS[0], email, password, code)
    notes.append(f"after staff lifted the lockout: the owner signs in ({status})")
    if not ok:
        failures.append(f"after lifting the lockout the owner could not sign in ({status})")
    for address in [ONE_ADDRESS, *MANY_ADDRESSES]:
        lift_lockout(ip=address)
    return notes, failures, fives


def _summary(answers: Counter) -> str:
    return ", ".join(
        f"{status}{' ' + error if error else ''}: {n}" for (status, error), n in answers.items()
    )


def innocents(base: str, nat_rider, owner, password: str) -> tuple[list[str], list[str], int]:
    """Strangers' failures never lock an innocent account. `nat_rider` shares an address with
    strangers guessing at made-up accounts; `owner` signed in from home, then a botnet guesses
    at the account from 60 addresses. Returns notes, failures and 5xx count."""
    notes, failures, fives = [], [], 0
    limit = settings.LOGIN_ADDRESS_FAILURE_LIMIT
    nat = session_from(NAT)
    answers: Counter = Counter()
    for n in range(limit - 1):  # by the forms: the token endpoint's throttle is a rate per address
        status, error, _ = attempt(base, nat, WAYS[n % 2], f"made-up-{n}@example.com", "guess")
        answers[(status, error)] += 1
        fives += status >= 500
    status, error, ok = attempt(base, nat, WAYS[2], nat_rider.username, password)
    notes.append(
        f"carrier NAT: {limit - 1} wrong sign-ins at made-up accounts from the rider's address "
        f"({_summary(answers)}), then the rider signs in there: {status} "
        f"{error or ('signed in' if ok else '')}"
    )
    if not ok:
        failures.append(f"carrier NAT: strangers' failures kept the rider out ({status} {error})")
    attempt(base, nat, WAYS[0], "made-up-last@example.com", "guess")  # the limit reached
    refused = nat.post(
        base + WAYS[2], json={"email": nat_rider.username, "password": password}, timeout=30
    )
    token = refused.json().get("token") if refused.status_code == 200 else None
    still = nat.get(base + "/api/rides", headers=_token_header(nat_rider), timeout=30)
    notes.append(
        f"carrier NAT past LOGIN_ADDRESS_FAILURE_LIMIT ({limit}): a sign-in there answers "
        f"{refused.status_code} Retry-After {refused.headers.get('Retry-After')}; a signed-in "
        f"rider's GET /api/rides there: {still.status_code}"
    )
    if refused.status_code != 429 or token or not refused.headers.get("Retry-After"):
        failures.append(f"carrier NAT past the limit: sign-in answered {refused.status_code}")
    if still.status_code != 200:
        failures.append(f"carrier NAT past the limit: the API answered {still.status_code}")

    status, _, ok = attempt(base, session_from(HOME), WAYS[2], owner.username, password)
    if not ok:
        failures.append(f"botnet: the owner could not sign in from home first ({status})")
    answers = Counter()
    for address in BOTNET:
        status, error, _ = attempt(base, session_from(address), WAYS[2], owner.username, "guess")
        answers[(status, error)] += 1
        fives += status >= 500
    new_place = attempt(base, session_from(NEW_PLACE), WAYS[2], owner.username, password)
    home = attempt(base, session_from(HOME), WAYS[2], owner.username, password)
    notes.append(
        f"botnet: {len(BOTNET)} addresses, one wrong password each at a rider's account "
        f"({_summary(answers)}); the owner's right password from a new address: "
        f"{new_place[0]} {new_place[1]}, from home (known): {home[0]} "
        f"{'signed in' if home[2] else home[1]}"
    )
    if not home[2]:
        failures.append(f"botnet: the owner was kept out of the account at home ({home[0]})")
    if new_place[2] or new_place[1] != "locked_out":
        failures.append(f"botnet: a new address was not slowed down ({new_place[0]})")
    for address in [NAT, HOME, NEW_PLACE, *BOTNET]:
        lift_lockout(ip=address)
    return notes, failures, fives


def _token_header(user) -> dict:
    return {"Authorization": f"Token {Token.objects.get(user=user).key}"}
