"""`Idempotency-Key` on ride requests, one request after the other (races: test_races.py)."""

import pytest

from bimride.models import IdempotentRequest
from rides.models import Ride
from tests.conftest import client_for
from tests.rides.conftest import (
    COMPLETE_BODY,
    DROPOFF,
    PICKUP,
    RIDE_BODY,
    assert_error,
    db_snapshot,
)

KEY = "ride-2026-11-23-a"


def _request(client, body=RIDE_BODY, key=KEY):
    return client.post("/api/rides", body, format="json", HTTP_IDEMPOTENCY_KEY=key)


@pytest.mark.django_db
def test_a_replay_returns_the_first_response_and_creates_nothing(as_rider):
    first = _request(as_rider)
    assert first.status_code == 201, first.content
    assert "Idempotent-Replayed" not in first
    before = db_snapshot()

    again = _request(as_rider)

    assert again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert db_snapshot() == before
    assert before["counts"]["Ride"] == before["counts"]["IdempotentRequest"] == 1


@pytest.mark.django_db
def test_a_replay_after_the_ride_moved_on_still_returns_the_original(as_rider, as_driver):
    first = _request(as_rider).json()
    ride_id = first["id"]
    for step, body in (("accept", None), ("start", None), ("complete", COMPLETE_BODY)):
        response = as_driver.post(f"/api/rides/{ride_id}/{step}", body, format="json")
        assert response.status_code == 200, response.content
    before = db_snapshot()

    again = _request(as_rider)

    assert again.status_code == 201
    assert again.json() == first
    assert again.json()["status"] == "requested"
    assert Ride.objects.get(pk=ride_id).status == "completed"
    assert db_snapshot() == before


@pytest.mark.django_db
def test_the_same_key_with_another_body_answers_409(as_rider):
    _request(as_rider)
    before = db_snapshot()

    response = _request(as_rider, {"pickup": DROPOFF, "dropoff": PICKUP})

    assert_error(response, 409, "idempotency_key_reused")
    assert db_snapshot() == before


@pytest.mark.django_db
def test_keys_belong_to_one_user(as_rider, other_rider):
    mine = _request(as_rider).json()

    theirs = _request(client_for(other_rider.user))

    assert theirs.status_code == 201
    assert theirs.json()["id"] != mine["id"]
    assert theirs.json()["rider"]["id"] == other_rider.pk
    assert "Idempotent-Replayed" not in theirs
    assert Ride.objects.count() == 2


@pytest.mark.django_db
def test_a_refused_request_does_not_use_up_its_key(as_rider):
    bad = _request(as_rider, {"pickup": {"lat": 91, "lng": 0}, "dropoff": DROPOFF})
    assert_error(bad, 400, "invalid")
    assert not IdempotentRequest.objects.exists()

    good = _request(as_rider)

    assert good.status_code == 201
    assert "Idempotent-Replayed" not in good
    assert Ride.objects.get().pk == good.json()["id"]


@pytest.mark.django_db
def test_a_conflict_is_not_replayed_once_the_conflict_is_gone(as_rider, rider):
    under_way = _request(as_rider, key="first").json()
    assert_error(_request(as_rider, key="second"), 409, "ride_in_progress")
    Ride.objects.filter(pk=under_way["id"]).update(status="cancelled")

    retried = _request(as_rider, key="second")

    assert retried.status_code == 201
    assert retried.json()["id"] != under_way["id"]
    assert Ride.objects.filter(rider=rider).count() == 2


@pytest.mark.django_db
def test_without_a_key_a_repeat_is_a_new_request(as_rider):
    assert as_rider.post("/api/rides", RIDE_BODY, format="json").status_code == 201

    again = as_rider.post("/api/rides", RIDE_BODY, format="json")

    assert_error(again, 409, "ride_in_progress")
    assert Ride.objects.count() == 1
