"""Scenarios 3 and 5 of `bench.reliability` against the live web server: racing duplicates,
the authorisation matrix and the throttles. Users are made in the database by the driver."""

import itertools
import json
import os
import re
import threading
import time
from collections import Counter

import requests
from django.conf import settings
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token

from bench.reliability.faults import Result
from bench.reliability.guessing import BOTNET, GUESSES, guessing, innocents
from rides.models import Driver, Ride, RideOffer, Rider

RIDE_BODY = {"pickup": {"lat": 52.52, "lng": 13.405}, "dropoff": {"lat": 52.50, "lng": 13.45}}
PASSWORD = "reliability-only-password-9"
_seq = itertools.count(1)
RUN = f"{int(time.time()):x}{os.getpid():x}"  # users of earlier runs stay in the database


class Actor:
    """A user and its API token (None: anonymous)."""

    def __init__(self, name: str, token: str | None, user=None):
        self.name, self.token, self.user = name, token, user

    @property
    def headers(self) -> dict:
        return {"Authorization": f"Token {self.token}"} if self.token else {}


def make_actor(role: str, label: str, *, password: bool = False) -> Actor:
    """Create a rider, driver (available, in Berlin) or staff user with a token."""
    n = next(_seq)
    email = f"rel-{RUN}-{label}-{n}-{role}@example.com"
    user = get_user_model().objects.create_user(username=email, email=email)
    if password:
        user.set_password(PASSWORD)
    else:
        user.set_unusable_password()
    user.is_staff = user.is_superuser = role == "staff"
    user.save()
    if role == "rider":
        Rider.objects.create(user=user, name=f"Rider {label}")
    elif role == "driver":
        Driver.objects.create(
            user=user, name=f"Driver {label}", available=True, lat=52.52, lng=13.405
        )
    return Actor(label, Token.objects.create(user=user).key, user)


def race(base: str, calls: list[tuple[Actor, str, dict | None, dict]]) -> list:
    """POST every (actor, path, body, headers) at once, each from its own thread."""
    barrier = threading.Barrier(len(calls), timeout=30)
    responses: list = [None] * len(calls)

    def post(i: int, actor: Actor, path: str, body, headers: dict) -> None:
        try:
            barrier.wait()
            responses[i] = requests.post(
                base + path, json=body, headers={**actor.headers, **headers}, timeout=30
            )
        except (requests.RequestException, threading.BrokenBarrierError) as error:
            responses[i] = error

    threads = [
        threading.Thread(target=post, args=(i, *c), daemon=True) for i, c in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return responses


def _codes(responses) -> Counter:
    out = Counter()
    for r in responses:
        if isinstance(r, requests.Response):
            code = r.json().get("error", {}).get("code") if r.status_code >= 400 else None
            out[(r.status_code, code)] += 1
        else:
            out[("error", type(r).__name__)] += 1
    return out


def duplicates(base: str, cfg) -> Result:
    """Scenario 3: N identical ride requests with one key; M drivers accepting one ride."""
    result = Result("3. duplicates")
    rider = make_actor("rider", "dup")
    key = {"Idempotency-Key": "reliability-tap-tap"}
    responses = race(base, [(rider, "/api/rides", RIDE_BODY, key)] * cfg.dup_requests)
    codes = _codes(responses)
    rides = Ride.objects.filter(rider__user=rider.user)
    bodies = {
        json.dumps(r.json(), sort_keys=True)
        for r in responses
        if isinstance(r, requests.Response) and r.ok
    }
    replays = sum(
        1
        for r in responses
        if isinstance(r, requests.Response) and r.headers.get("Idempotent-Replayed") == "true"
    )
    result.notes.append(f"{cfg.dup_requests} same-key requests: {dict(codes)}, {replays} replays")
    doubled_rides = max(0, rides.count() - 1)
    # Replays count against the ride_create throttle (30/min): beyond it, 429 is the answer.
    allowed = {(201, None), (429, "throttled")}
    if rides.count() != 1 or set(codes) - allowed or len(bodies) != 1:
        result.fail(
            f"{rides.count()} ride(s) for one key; answers {dict(codes)};"
            f" {len(bodies)} distinct 201 bodies"
        )
    fives = sum(n for (s, _), n in codes.items() if isinstance(s, int) and s >= 500)

    ride = rides.first()
    drivers = [make_actor("driver", f"racer{i}") for i in range(cfg.racing_drivers)]
    for driver in drivers:  # offered to all, as matching does: losers see the ride, get 409
        RideOffer.objects.create(ride=ride, driver=driver.user.driver, distance_km=1)
    responses = race(base, [(d, f"/api/rides/{ride.pk}/accept", None, {}) for d in drivers])
    codes = _codes(responses)
    fives += sum(n for (s, _), n in codes.items() if isinstance(s, int) and s >= 500)
    ride.refresh_from_db()
    winners = [
        d
        for d, r in zip(drivers, responses, strict=True)
        if isinstance(r, requests.Response) and r.status_code == 200
    ]
    result.notes.append(f"{cfg.racing_drivers} drivers racing: {dict(codes)}")
    expected = {(200, None): 1, (409, "invalid_transition"): cfg.racing_drivers - 1}
    if codes != expected or len(winners) != 1 or ride.driver.user != winners[0].user:
        result.fail(f"accept race: {dict(codes)}; ride driver {ride.driver_id}")
    result.load = (
        f"{cfg.dup_requests} concurrent same-key POST /api/rides; "
        f"{cfg.racing_drivers} concurrent accepts"
    )
    result.faults = "races"
    result.jobs, result.lost = "-", 0 if rides.count() == 1 else "ride missing"
    result.duplicated = doubled_rides + max(0, len(winners) - 1)
    result.errors_5xx = fives
    return result


# --- scenario 5 ---------------------------------------------------------------------------------


def security(base: str) -> Result:
    """Scenario 5: who may read and write what; staff-only surfaces; throttles; guessing."""
    result = Result("5. security")
    a, b = make_actor("rider", "rider_a", password=True), make_actor("rider", "rider_b")
    d1, d2 = make_actor("driver", "driver_1"), make_actor("driver", "driver_2")
    staff = make_actor("staff", "staff", password=True)
    anon = Actor("anon", None)
    s = requests.Session()

    def call(actor: Actor, method: str, path: str, body=None) -> requests.Response:
        return s.request(method, base + path, json=body, headers=actor.headers, timeout=30)

    ride = call(a, "POST", "/api/rides", RIDE_BODY).json()
    rid = ride["id"]
    job_id = ride["jobs"][0]["id"] if ride.get("jobs") else None
    assert call(d1, "POST", f"/api/rides/{rid}/accept").status_code == 200
    own = call(b, "POST", "/api/rides", RIDE_BODY).json()["id"]  # rider B's own ride

    checks: list[tuple[str, Actor, str, str, dict | None, set]] = []
    R = f"/api/rides/{rid}"
    for actor, want in (
        (anon, {401}),
        (a, {200}),
        (b, {404}),
        (d1, {200}),
        (d2, {404}),
        (staff, {200}),
    ):
        checks.append(("ride detail", actor, "GET", R, None, want))
    if job_id:
        for actor, want in (
            (anon, {401}),
            (a, {200}),
            (b, {404, 403}),
            (d2, {404, 403}),
            (staff, {200}),
        ):
            checks.append(("job detail", actor, "GET", f"/api/jobs/{job_id}", None, want))
    for path, body in (
        (R + "/start", None),
        (R + "/complete", {"distance_km": "4.2", "duration_min": 14}),
        (R + "/cancel", {}),
    ):
        for actor, want in ((anon, {401}), (b, {403, 404}), (d2, {403, 404})):
            checks.append(("write others' ride", actor, "POST", path, body, want))
    for actor, want in ((a, {403, 404}), (d1, {403, 404}), (d2, {403, 404})):
        checks.append(
            ("cancel rider B's ride", actor, "POST", f"/api/rides/{own}/cancel", {}, want)
        )
    ops = ["/api/ops/queues", "/api/ops/dead-letters"]
    for path in ops + ["/metrics"]:
        for actor in (anon, a, b, d1, d2):
            checks.append(("staff only", actor, "GET", path, None, {401, 403}))
        checks.append(("staff only", staff, "GET", path, None, {200}))
    for actor in (anon, a, d1):
        checks.append(
            ("staff only", actor, "POST", "/api/ops/dead-letters/1/retry", {}, {401, 403})
        )
        checks.append(
            (
                "staff only",
                actor,
                "POST",
                "/api/ops/dead-letters/1/discard",
                {"note": "x"},
                {401, 403},
            )
        )

    failures, fives = [], 0
    for what, actor, method, path, body, want in checks:
        response = call(actor, method, path, body)
        fives += response.status_code >= 500
        if response.status_code not in want:
            failures.append(f"{what}: {actor.name} {method} {path} -> {response.status_code}")
    # Lists: nobody sees rider A's ride but A, its driver and staff.
    for actor, sees in ((a, True), (b, False), (d1, True), (d2, False), (staff, True)):
        ids = {r["id"] for r in call(actor, "GET", "/api/rides?page_size=100").json()["results"]}
        if (rid in ids) != sees:
            failures.append(f"list: {actor.name} {'misses' if sees else 'sees'} ride {rid}")
    ride_row = Ride.objects.get(pk=rid)
    if (ride_row.status, ride_row.driver.user) != ("accepted", d1.user):
        failures.append(f"ride {rid} changed by others: {ride_row.status}")
    if Ride.objects.get(pk=own).status != "requested":
        failures.append(f"rider B's ride {own} changed by others")
    failures += admin_checks(base, a, staff)
    throttled = throttle_check(base)
    result.notes.append(throttled)
    if "429" not in throttled:
        failures.append(throttled)
    guessed = make_actor("staff", "guessed", password=True)
    guess_notes, guess_failures, guess_fives = guessing(base, guessed.user, PASSWORD)
    result.notes += guess_notes
    failures += guess_failures
    fives += guess_fives
    nat_rider = make_actor("rider", "behind_nat", password=True)
    owner = make_actor("rider", "botnet_target", password=True)
    innocent_notes, innocent_failures, innocent_fives = innocents(
        base, nat_rider.user, owner.user, PASSWORD
    )
    result.notes += innocent_notes
    failures += innocent_failures
    fives += innocent_fives
    result.load = (
        f"{len(checks) + 5} authz requests, 6 actors; 31 ride requests in a minute; "
        f"{2 * GUESSES} wrong passwords at one staff account; "
        f"{settings.LOGIN_ADDRESS_FAILURE_LIMIT} at made-up accounts from one rider's address, "
        f"{len(BOTNET)} at one rider's account from {len(BOTNET)} addresses"
    )
    result.faults = (
        "cross-user reads/writes, non-staff on staff surfaces, password guessing from 1 and "
        "from 50 addresses, strangers' failures around innocent riders"
    )
    result.errors_5xx = fives
    result.notes.append(f"{len(checks)} matrix checks, {len(failures)} violations")
    for failure in failures:
        result.fail(failure)
    return result


def admin_checks(base: str, rider: Actor, staff: Actor) -> list[str]:
    """/admin/ lets a staff session in and keeps an anonymous or rider session out."""
    failures = []
    for actor, allowed in ((None, False), (rider, False), (staff, True)):
        s = requests.Session()
        if actor is not None:
            page = s.get(base + "/admin/login/", timeout=30)
            token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text)
            s.post(
                base + "/admin/login/?next=/admin/",
                data={
                    "username": actor.user.username,
                    "password": PASSWORD,
                    "csrfmiddlewaretoken": token.group(1) if token else "",
                    "next": "/admin/",
                },
                headers={"Referer": base + "/admin/login/"},
                timeout=30,
                allow_redirects=False,
            )
        response = s.get(base + "/admin/", timeout=30, allow_redirects=False)
        ok = response.status_code == 200
        if ok != allowed:
            who = actor.name if actor else "anon"
            failures.append(f"admin: {who} GET /admin/ -> {response.status_code}")
    return failures


def throttle_check(base: str) -> str:
    """31 ride requests by one rider within a minute: the 31st answers 429 with Retry-After."""
    rider = make_actor("rider", "throttled")
    s = requests.Session()
    statuses = [
        s.post(base + "/api/rides", json=RIDE_BODY, headers=rider.headers, timeout=30).status_code
        for _ in range(30)
    ]
    Ride.objects.filter(rider__user=rider.user).update(status="cancelled")
    last = s.post(base + "/api/rides", json=RIDE_BODY, headers=rider.headers, timeout=30)
    summary = dict(Counter(statuses))
    if last.status_code == 429 and last.headers.get("Retry-After"):
        return f"throttle ride_create: 30 requests {summary}, the 31st 429 (Retry-After set)"
    return f"throttle ride_create NOT applied: 30 requests {summary}, 31st {last.status_code}"
