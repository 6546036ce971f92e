"""The rides and drivers API as its clients use it: request, list, move a ride through its
states, drivers' availability, location and offers, pagination and the OpenAPI schema."""

import json
from datetime import timedelta
from decimal import Decimal

import pytest
import yaml
from django.utils import timezone

from bimride.jobs.models import Job
from rides.models import Driver, LocationPing, Ride, RideEvent, RideOffer
from tests.factories import DriverFactory, RideFactory
from tests.rides.conftest import (
    COMPLETE_BODY,
    DROPOFF,
    PICKUP,
    RIDE_BODY,
    assert_error,
    db_snapshot,
    make_ride,
)

RIDE_KEYS = {
    "id", "status", "rider", "driver", "pickup", "dropoff", "requested_at", "accepted_at",
    "started_at", "completed_at", "cancelled_at", "distance_km", "duration_min",
    "estimated_fare", "fare", "payment_status", "receipt_status", "jobs", "money",
}  # fmt: skip


def _job_names(ride_id: int) -> list[str]:
    return sorted(Job.objects.filter(subject=f"ride:{ride_id}").values_list("name", flat=True))


def _assert_jobs(ride_id: int, body: dict, expected: set[str]) -> None:
    """The ride's jobs include `expected` (other apps may subscribe too), each once, all queued,
    and the body lists exactly the ride's jobs."""
    names = _job_names(ride_id)
    assert expected <= set(names), names
    assert len(names) == len(set(names)), names
    assert sorted(j["name"] for j in body["jobs"]) == names
    assert {j["state"] for j in body["jobs"]} == {"queued"}


def _events(ride_id: int) -> list[tuple]:
    return list(RideEvent.objects.filter(ride_id=ride_id).values_list("old", "new", "actor_id"))


# --- requesting, listing, reading ---------------------------------------------------------------
@pytest.mark.django_db
def test_requesting_a_ride_answers_201_with_the_ride_and_its_jobs(as_rider, rider):
    response = as_rider.post("/api/rides", RIDE_BODY, format="json")

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == RIDE_KEYS
    ride = Ride.objects.get()
    assert body["id"] == ride.pk
    assert body["status"] == "requested"
    assert body["rider"] == {"id": rider.pk, "name": rider.name}
    assert body["driver"] is None
    assert (body["pickup"], body["dropoff"]) == (PICKUP, DROPOFF)
    assert body["fare"] is None
    assert body["estimated_fare"] == {"amount": ride.estimated_fare, "currency": "usd"}
    assert isinstance(ride.estimated_fare, int) and ride.estimated_fare > 250
    assert body["accepted_at"] is body["started_at"] is body["completed_at"] is None
    assert (body["payment_status"], body["receipt_status"]) == ("none", "none")
    # No job per ride waits for its expiry: the every-minute sweep cancels it if unaccepted.
    _assert_jobs(ride.pk, body, {"payments.authorize_payment", "rides.match_ride"})
    assert (ride.rider, ride.pickup_lat, ride.dropoff_lng) == (rider, 52.52, 13.45)
    assert _events(ride.pk) == [("", "requested", rider.user_id)]


@pytest.mark.django_db
def test_a_rider_with_a_ride_under_way_cannot_request_another(as_rider, rider):
    make_ride("accepted", rider=rider)
    before = db_snapshot()

    response = as_rider.post("/api/rides", RIDE_BODY, format="json")

    assert_error(response, 409, "ride_in_progress")
    assert db_snapshot() == before


@pytest.mark.django_db
@pytest.mark.parametrize("finished", ["completed", "cancelled"])
def test_a_rider_whose_rides_are_over_can_request_again(as_rider, rider, finished):
    make_ride(finished, rider=rider)

    assert as_rider.post("/api/rides", RIDE_BODY, format="json").status_code == 201


@pytest.mark.django_db
def test_the_ride_list_shows_the_riders_rides_newest_first(as_rider, rider):
    old = make_ride("completed", rider=rider)
    new = make_ride("requested", rider=rider)
    make_ride("requested")  # someone else's

    response = as_rider.get("/api/rides")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [r["id"] for r in body["results"]] == [new.pk, old.pk]
    assert body["results"][1]["fare"] == {"amount": 1174, "currency": "usd"}
    assert body["results"][1]["distance_km"] == "4.20"
    assert set(body["results"][0]) == RIDE_KEYS


@pytest.mark.django_db
def test_the_ride_detail_shows_the_ride(as_rider, rider, driver):
    ride = make_ride("accepted", rider=rider, driver=driver)

    response = as_rider.get(f"/api/rides/{ride.pk}")

    assert response.status_code == 200
    body = response.json()
    assert (body["id"], body["status"]) == (ride.pk, "accepted")
    assert body["driver"] == {"id": driver.pk, "name": driver.name}
    assert body["accepted_at"] is not None


# --- the life of a ride -------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_driver_accepts_a_requested_ride(as_driver, driver):
    ride = make_ride("requested")

    response = as_driver.post(f"/api/rides/{ride.pk}/accept")

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["status"], body["driver"]) == ("accepted", {"id": driver.pk, "name": driver.name})
    assert body["accepted_at"] is not None
    ride.refresh_from_db()
    assert (ride.status, ride.driver, ride.accepted_at is not None) == ("accepted", driver, True)
    assert _events(ride.pk) == [("requested", "accepted", driver.user_id)]


@pytest.mark.django_db
def test_the_driver_starts_an_accepted_ride(as_driver, driver):
    ride = make_ride("accepted", driver=driver)

    response = as_driver.post(f"/api/rides/{ride.pk}/start")

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "in_progress"
    assert response.json()["started_at"] is not None
    ride.refresh_from_db()
    assert (ride.status, ride.started_at is not None) == ("in_progress", True)
    assert _events(ride.pk) == [("accepted", "in_progress", driver.user_id)]


@pytest.mark.django_db
def test_completing_a_ride_sets_the_fare_and_publishes_ride_completed(as_driver, driver):
    """Completion captures the payment; the receipt follows once the charge is settled."""
    ride = make_ride("in_progress", driver=driver)

    response = as_driver.post(f"/api/rides/{ride.pk}/complete", COMPLETE_BODY, format="json")

    assert response.status_code == 200, response.content
    body = response.json()
    fare = 250 + 504 + 14 * 30  # base + 4.20 km at 120 + 14 min at 30
    assert body["status"] == "completed"
    assert body["fare"] == {"amount": fare, "currency": "usd"}
    assert (body["distance_km"], body["duration_min"]) == ("4.20", 14)
    assert body["receipt_status"] == "pending"
    ride.refresh_from_db()
    assert (ride.status, ride.fare_amount, ride.distance_km) == ("completed", fare, Decimal("4.2"))
    assert _events(ride.pk) == [("in_progress", "completed", driver.user_id)]
    _assert_jobs(
        ride.pk,
        body,
        {"payments.capture_payment"},
    )
    assert ride.analytics_pending  # counted in its day's totals by the every-minute fold


@pytest.mark.django_db
def test_a_completed_ride_of_zero_km_and_minutes_costs_the_base_fare(as_driver, driver):
    ride = make_ride("in_progress", driver=driver)

    response = as_driver.post(
        f"/api/rides/{ride.pk}/complete", {"distance_km": "0", "duration_min": 0}, format="json"
    )

    assert response.status_code == 200
    assert response.json()["fare"] == {"amount": 250, "currency": "usd"}


@pytest.mark.django_db
def test_the_rider_cancels_a_requested_ride(as_rider, rider):
    ride = make_ride("requested", rider=rider)

    response = as_rider.post(f"/api/rides/{ride.pk}/cancel", {"reason": "plans changed"})

    assert response.status_code == 200, response.content
    assert response.json()["status"] == "cancelled"
    assert response.json()["cancelled_at"] is not None
    ride.refresh_from_db()
    assert (ride.status, ride.cancel_reason) == ("cancelled", "plans changed")
    assert _events(ride.pk) == [("requested", "cancelled", rider.user_id)]
    release = Job.objects.get(subject=f"ride:{ride.pk}", name="payments.release_authorization")
    assert release.payload == {
        "ride_id": ride.pk,
        "cancelled_by": "rider",
        "after_accept_seconds": None,
    }


@pytest.mark.django_db
def test_the_driver_cancels_an_accepted_ride_without_a_reason(as_driver, driver):
    ride = make_ride("accepted", driver=driver)

    response = as_driver.post(f"/api/rides/{ride.pk}/cancel")

    assert response.status_code == 200, response.content
    ride.refresh_from_db()
    assert (ride.status, ride.cancel_reason, ride.driver) == ("cancelled", "", driver)
    assert _events(ride.pk) == [("accepted", "cancelled", driver.user_id)]
    release = Job.objects.get(subject=f"ride:{ride.pk}", name="payments.release_authorization")
    assert release.payload["cancelled_by"] == "driver"
    assert 0 <= release.payload["after_accept_seconds"] < 10


@pytest.mark.django_db
def test_an_unavailable_driver_cannot_accept(as_driver, driver):
    Driver.objects.filter(pk=driver.pk).update(available=False)
    ride = make_ride("requested")
    before = db_snapshot()

    assert_error(as_driver.post(f"/api/rides/{ride.pk}/accept"), 409, "driver_unavailable")
    assert db_snapshot() == before


@pytest.mark.django_db
def test_a_driver_with_a_ride_under_way_cannot_accept_another(as_driver, driver):
    make_ride("in_progress", driver=driver)
    ride = make_ride("requested")
    before = db_snapshot()

    assert_error(as_driver.post(f"/api/rides/{ride.pk}/accept"), 409, "driver_busy")
    assert db_snapshot() == before


# --- drivers ------------------------------------------------------------------------------------
@pytest.mark.django_db
def test_a_driver_goes_off_and_on_duty(as_driver, driver):
    for available in (False, True):
        response = as_driver.post(
            "/api/drivers/me/availability", {"available": available}, format="json"
        )

        assert response.status_code == 200, response.content
        assert response.json() == {"available": available}
        driver.refresh_from_db()
        assert driver.available is available


@pytest.mark.django_db
def test_a_location_ping_answers_202_stores_it_and_feeds_the_heatmap(as_driver, driver):
    response = as_driver.post("/api/drivers/me/location", {"lat": 48.85, "lng": 2.35})

    assert response.status_code == 202
    assert response.content == b""
    driver.refresh_from_db()
    assert (driver.lat, driver.lng) == (48.85, 2.35)
    assert timezone.now() - driver.location_at < timedelta(seconds=10)
    ping = LocationPing.objects.get()
    assert (ping.lat, ping.lng, ping.at) == (48.85, 2.35, driver.location_at)
    assert not Job.objects.exists()  # the heatmap folds pings in batches, not a job per ping


@pytest.mark.django_db
def test_the_offers_are_the_requested_rides_offered_to_the_driver_nearest_first(as_driver, driver):
    far, near, taken, not_offered = (make_ride("requested") for _ in range(4))
    Ride.objects.filter(pk=taken.pk).update(status="accepted", driver=DriverFactory())
    for ride, km in ((far, 4.0), (near, 0.5), (taken, 0.1)):
        RideOffer.objects.create(ride=ride, driver=driver, distance_km=km)
    RideOffer.objects.create(ride=not_offered, driver=DriverFactory(), distance_km=0.1)

    response = as_driver.get("/api/drivers/me/offers")

    assert response.status_code == 200
    body = response.json()
    assert body["count"] == 2
    assert [r["id"] for r in body["results"]] == [near.pk, far.pk]
    assert body["results"][0]["status"] == "requested"


# --- pagination ---------------------------------------------------------------------------------
@pytest.fixture
def rides_of_rider(rider) -> list[int]:
    """105 finished rides of `rider`, ids newest first (as the API lists them)."""
    now = timezone.now()
    rides = [
        RideFactory.build(rider=rider, status="cancelled", cancelled_at=now) for _ in range(105)
    ]
    Ride.objects.bulk_create(rides)
    return list(Ride.objects.filter(rider=rider).values_list("id", flat=True))


@pytest.mark.django_db
def test_lists_are_paginated_twenty_to_a_page(as_rider, rides_of_rider):
    first = as_rider.get("/api/rides").json()

    assert set(first) == {"count", "next", "previous", "results"}
    assert first["count"] == 105
    assert first["previous"] is None
    assert first["next"].endswith("/api/rides?page=2")
    assert [r["id"] for r in first["results"]] == rides_of_rider[:20]

    last = as_rider.get("/api/rides?page=6").json()
    assert last["next"] is None
    assert [r["id"] for r in last["results"]] == rides_of_rider[100:]


@pytest.mark.django_db
def test_page_size_is_chosen_by_the_client_up_to_100(as_rider, rides_of_rider):
    small = as_rider.get("/api/rides?page_size=5&page=2").json()
    assert [r["id"] for r in small["results"]] == rides_of_rider[5:10]
    assert "page_size=5" in small["next"] and "page=3" in small["next"]

    largest = as_rider.get("/api/rides?page_size=100").json()
    assert len(largest["results"]) == 100
    assert largest["count"] == 105

    too_large = as_rider.get("/api/rides?page_size=1000")
    assert too_large.status_code == 400
    assert too_large.json()["error"]["fields"] == {
        "page_size": ["Must be a whole number from 1 to 100."]
    }


@pytest.mark.django_db
def test_unknown_query_parameters_are_ignored(as_rider, rides_of_rider):
    plain = as_rider.get("/api/rides").json()
    filtered = as_rider.get("/api/rides?status=nonsense&sort=-id").json()
    assert filtered["results"] == plain["results"] and filtered["count"] == plain["count"]


# --- schema and docs ----------------------------------------------------------------------------
@pytest.mark.django_db
def test_the_openapi_schema_describes_the_rides_api(anon):
    response = anon.get("/api/schema/")

    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    assert schema["info"]["title"] == "BimRide API"
    for path in (
        "/api/auth/register",
        "/api/auth/token",
        "/api/rides",
        "/api/rides/{ride_id}",
        "/api/rides/{ride_id}/accept",
        "/api/rides/{ride_id}/complete",
        "/api/drivers/me/location",
        "/api/drivers/me/offers",
    ):
        assert path in schema["paths"], path
    assert {"get", "post"} <= set(schema["paths"]["/api/rides"])
    as_json = anon.get("/api/schema/?format=json")
    assert as_json.status_code == 200
    assert json.loads(as_json.content)["paths"].keys() == schema["paths"].keys()


@pytest.mark.django_db
def test_the_api_docs_page_is_served(anon):
    response = anon.get("/api/docs/")

    assert response.status_code == 200
    assert b"swagger" in response.content.lower()


@pytest.mark.django_db
def test_an_unknown_api_path_answers_404_in_the_error_shape(as_rider):
    assert_error(as_rider.get("/api/nothing-here"), 404, "not_found")


@pytest.mark.django_db
def test_matching_ranks_equally_placed_drivers_without_failing(rider):
    from rides.models import Ride, RideOffer
    from rides.services import ride_match
    from tests.factories import DriverFactory, RideFactory

    drivers = DriverFactory.create_batch(3, lat=52.52, lng=13.405, rank_score=1.0)
    ride = RideFactory(rider=rider, status=Ride.Status.REQUESTED)
    offers = ride_match(ride_id=ride.pk)
    assert [o.driver_id for o in offers] == sorted(d.pk for d in drivers)
    assert RideOffer.objects.filter(ride=ride).count() == 3


@pytest.mark.django_db
def test_matching_offers_the_best_ranked_free_drivers_by_distance_over_score(rider, settings):
    from rides.models import Ride
    from rides.services import distance_km, ride_match
    from tests.factories import DriverFactory, RideFactory

    settings.MATCH_DRIVERS = 3
    ride = RideFactory(rider=rider, status=Ride.Status.REQUESTED, pickup_lat=52.52, pickup_lng=13.4)
    near = DriverFactory(lat=52.521, lng=13.4)  # ~0.1 km
    east = DriverFactory(lat=52.52, lng=13.49)  # ~6 km, but rated four times as well
    east.rank_score = 4.0
    east.save()
    north = DriverFactory(lat=52.54, lng=13.4)  # ~2.2 km
    DriverFactory(lat=52.56, lng=13.4)  # ~4.4 km: one too many
    DriverFactory(lat=52.5205, lng=13.4, available=False)
    busy = DriverFactory(lat=52.5205, lng=13.4)
    RideFactory(status=Ride.Status.IN_PROGRESS, driver=busy)
    DriverFactory(lat=53.2, lng=13.4)  # ~76 km: outside the search box

    offers = ride_match(ride_id=ride.pk)

    assert [o.driver_id for o in offers] == [near.pk, east.pk, north.pk]
    assert offers[2].distance_km == pytest.approx(distance_km(52.52, 13.4, 52.54, 13.4))
