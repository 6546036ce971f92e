"""Concurrent requests against a live server (each request its own thread and connection):
racing drivers, racing duplicates of one ride request, a cancel racing an accept."""

import threading
import time
from collections import Counter

import pytest
import requests

from bimride.jobs.models import Job
from bimride.models import IdempotentRequest
from rides.models import Ride, RideEvent, RideOffer
from tests.factories import DriverFactory
from tests.rides.conftest import DROPOFF, PICKUP, RIDE_BODY, make_ride

pytestmark = pytest.mark.django_db(transaction=True)
TIMEOUT = 20  # seconds, for any one request and for the whole race


def _race(live_server, calls: list[tuple[str, str, dict | None, dict]]) -> list[requests.Response]:
    """POST every (user token, path, body, headers) at once; the responses in the same order."""
    barrier = threading.Barrier(len(calls), timeout=TIMEOUT)
    responses: list = [None] * len(calls)
    errors: list[BaseException] = []

    def post(i: int, token: str, path: str, body, headers: dict) -> None:
        try:
            barrier.wait()
            responses[i] = requests.post(
                live_server.url + path,
                json=body,
                headers={"Authorization": f"Token {token}", **headers},
                timeout=TIMEOUT,
            )
        except BaseException as error:  # noqa: BLE001 - reported by the test below
            errors.append(error)

    threads = [
        threading.Thread(target=post, args=(i, *call), daemon=True) for i, call in enumerate(calls)
    ]
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + TIMEOUT
    for thread in threads:
        thread.join(timeout=max(0.0, deadline - time.monotonic()))
    assert not any(thread.is_alive() for thread in threads), "a request did not finish in time"
    assert not errors, errors
    return responses


def _codes(responses) -> Counter:
    return Counter(
        (r.status_code, r.json()["error"]["code"] if r.status_code >= 400 else None)
        for r in responses
    )


@pytest.mark.parametrize("drivers", [2, 20])
def test_of_drivers_racing_for_a_ride_exactly_one_gets_it(live_server, drivers):
    ride = make_ride("requested")
    racers = DriverFactory.create_batch(drivers)
    for driver in racers:
        RideOffer.objects.create(ride=ride, driver=driver, distance_km=1)

    responses = _race(
        live_server,
        [(d.user.auth_token.key, f"/api/rides/{ride.pk}/accept", None, {}) for d in racers],
    )

    assert _codes(responses) == {(200, None): 1, (409, "invalid_transition"): drivers - 1}
    winner = next(d for d, r in zip(racers, responses, strict=True) if r.status_code == 200)
    ride.refresh_from_db()
    assert (ride.status, ride.driver) == ("accepted", winner)
    assert list(RideEvent.objects.filter(ride=ride).values_list("old", "new", "actor")) == [
        ("requested", "accepted", winner.user_id)
    ]


def test_a_driver_accepting_two_rides_at_once_gets_one(live_server, driver):
    rides = [make_ride("requested"), make_ride("requested")]
    token = driver.user.auth_token.key

    responses = _race(live_server, [(token, f"/api/rides/{r.pk}/accept", None, {}) for r in rides])

    assert _codes(responses) == {(200, None): 1, (409, "driver_busy"): 1}
    assert Ride.objects.filter(driver=driver, status="accepted").count() == 1


def test_racing_duplicates_of_one_ride_request_create_one_ride(live_server, rider):
    token = rider.user.auth_token.key
    key = {"Idempotency-Key": "tap-tap-tap"}

    responses = _race(live_server, [(token, "/api/rides", RIDE_BODY, key)] * 10)

    assert [r.status_code for r in responses] == [201] * 10
    bodies = [r.json() for r in responses]
    assert all(body == bodies[0] for body in bodies)
    replayed = Counter(r.headers.get("Idempotent-Replayed") for r in responses)
    assert replayed == {None: 1, "true": 9}
    ride = Ride.objects.get()
    assert (ride.pk, ride.rider) == (bodies[0]["id"], rider)
    assert IdempotentRequest.objects.count() == 1
    jobs = list(Job.objects.filter(subject=f"ride:{ride.pk}").values_list("name", flat=True))
    assert "rides.match_ride" in jobs
    assert len(jobs) == len(set(jobs)), jobs  # each subscriber once: one request did the work


def test_racing_requests_with_one_key_and_different_bodies_create_one_ride(live_server, rider):
    token = rider.user.auth_token.key
    bodies = [
        {"pickup": PICKUP, "dropoff": {"lat": DROPOFF["lat"], "lng": 13.0 + i / 100}}
        for i in range(5)
    ]
    key = {"Idempotency-Key": "one-key"}

    responses = _race(live_server, [(token, "/api/rides", body, key) for body in bodies])

    assert _codes(responses) == {(201, None): 1, (409, "idempotency_key_reused"): 4}
    created = next(r.json() for r in responses if r.status_code == 201)
    assert Ride.objects.get().pk == created["id"]


def test_racing_ride_requests_of_one_rider_create_one_ride(live_server, rider):
    """Without a shared key (say, two devices), a rider still gets one ride under way."""
    token = rider.user.auth_token.key

    responses = _race(
        live_server,
        [(token, "/api/rides", RIDE_BODY, {"Idempotency-Key": f"device-{i}"}) for i in range(10)],
    )

    assert _codes(responses) == {(201, None): 1, (409, "ride_in_progress"): 9}
    assert Ride.objects.filter(rider=rider).count() == 1


def test_a_cancel_racing_an_accept_leaves_the_ride_cancelled(live_server, rider, driver):
    ride = make_ride("requested", rider=rider)
    RideOffer.objects.create(ride=ride, driver=driver, distance_km=1)

    cancel, accept = _race(
        live_server,
        [
            (rider.user.auth_token.key, f"/api/rides/{ride.pk}/cancel", {}, {}),
            (driver.user.auth_token.key, f"/api/rides/{ride.pk}/accept", None, {}),
        ],
    )

    assert cancel.status_code == 200, cancel.content
    events = list(RideEvent.objects.filter(ride=ride).values_list("old", "new"))
    if accept.status_code == 200:  # the accept went first: the rider cancelled a taken ride
        assert events == [("requested", "accepted"), ("accepted", "cancelled")]
    else:
        assert accept.json()["error"]["code"] == "invalid_transition"
        assert events == [("requested", "cancelled")]
    assert Ride.objects.get(pk=ride.pk).status == "cancelled"
