"""Who may do what to a ride: the authorization matrix of every endpoint, what each one sees in
lists, and the transitions no one may make (409 `invalid_transition`)."""

import pytest

from rides.models import Driver, Ride, RideOffer
from tests.factories import DriverFactory
from tests.rides.conftest import COMPLETE_BODY, RIDE_BODY, assert_error, db_snapshot, make_ride

ACTORS = ("anon", "rider_a", "rider_b", "driver", "other_driver", "offered_driver", "staff")
A401 = (401, "not_authenticated")
F403 = (403, "permission_denied")
N404 = (404, "not_found")
DRIVERS_ONLY = {"anon": A401, "rider_a": F403, "rider_b": F403, "staff": F403}
ANY_DRIVER = {**DRIVERS_ONLY, "driver": 200, "other_driver": 200, "offered_driver": 200}
R = "/api/rides/{ride}"

# endpoint, method, path, state of rider A's ride, body, status the ride moves to on success,
# outcome per actor: rider A's ride is taken by `driver` once accepted and offered to
# `driver` and `offered_driver`, never to `other_driver`.
MATRIX = [
    ("detail", "GET", R, "accepted", None, None, {
        "anon": A401, "rider_a": 200, "rider_b": N404, "driver": 200, "other_driver": N404,
        "offered_driver": 200, "staff": 200,
    }),
    ("request", "POST", "/api/rides", "accepted", RIDE_BODY, None, {
        "anon": A401, "rider_a": (409, "ride_in_progress"), "rider_b": 201, "driver": F403,
        "other_driver": F403, "offered_driver": F403, "staff": F403,
    }),
    ("accept-requested", "POST", R + "/accept", "requested", None, "accepted", ANY_DRIVER),
    ("accept-taken", "POST", R + "/accept", "accepted", None, None, {
        **DRIVERS_ONLY, "driver": (409, "invalid_transition"), "other_driver": N404,
        "offered_driver": (409, "invalid_transition"),
    }),
    ("start", "POST", R + "/start", "accepted", None, "in_progress", {
        **DRIVERS_ONLY, "driver": 200, "other_driver": N404, "offered_driver": F403,
    }),
    ("complete", "POST", R + "/complete", "in_progress", COMPLETE_BODY, "completed", {
        **DRIVERS_ONLY, "driver": 200, "other_driver": N404, "offered_driver": F403,
    }),
    ("cancel-accepted", "POST", R + "/cancel", "accepted", {"reason": "x"}, "cancelled", {
        "anon": A401, "rider_a": 200, "rider_b": N404, "driver": 200, "other_driver": N404,
        "offered_driver": F403, "staff": F403,
    }),
    ("cancel-requested", "POST", R + "/cancel", "requested", {}, "cancelled", {
        "anon": A401, "rider_a": 200, "rider_b": N404, "driver": F403, "other_driver": N404,
        "offered_driver": F403, "staff": F403,
    }),
    ("availability", "POST", "/api/drivers/me/availability", "accepted", {"available": False},
     None, ANY_DRIVER),
    ("location", "POST", "/api/drivers/me/location", "accepted", {"lat": 1.5, "lng": 2.5}, None,
     {**DRIVERS_ONLY, "driver": 202, "other_driver": 202, "offered_driver": 202}),
    ("offers", "GET", "/api/drivers/me/offers", "accepted", None, None, ANY_DRIVER),
    ("list", "GET", "/api/rides", "accepted", None, None, {
        "anon": A401, **dict.fromkeys(ACTORS[1:], 200),
    }),
]  # fmt: skip


def _cases():
    for endpoint, method, path, state, body, becomes, outcomes in MATRIX:
        assert set(outcomes) == set(ACTORS), endpoint  # every actor, every endpoint
        for actor in ACTORS:
            expected = outcomes[actor]
            status, code = expected if isinstance(expected, tuple) else (expected, None)
            yield pytest.param(
                method, path, state, body, becomes, actor, status, code, id=f"{endpoint}-{actor}"
            )


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "state", "body", "becomes", "actor", "status", "code"), list(_cases())
)
def test_authorization_matrix(world, method, path, state, body, becomes, actor, status, code):
    ride = world.ride(state)
    client = world.client(actor)
    before = db_snapshot()

    url = path.format(ride=ride.pk)
    response = client.get(url) if method == "GET" else client.post(url, body, format="json")

    ride.refresh_from_db()
    if status >= 400:
        assert_error(response, status, code)
        assert db_snapshot() == before
        return
    assert response.status_code == status, response.content
    assert ride.status == (becomes or state)
    if becomes == "accepted":
        assert ride.driver.user == client.user
    if "{ride}" in path:
        assert response.json()["id"] == ride.pk
        assert response.json()["status"] == ride.status
    if path == "/api/rides" and method == "POST":
        assert Ride.objects.filter(rider=world.rider_b).count() == 1
    if path.endswith("/availability"):
        assert Driver.objects.get(user=client.user).available is False
    if path.endswith("/location"):
        assert Driver.objects.filter(user=client.user, lat=1.5, lng=2.5).exists()


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("actor", "sees"),
    [
        ("rider_a", {"mine"}),
        ("rider_b", set()),
        ("driver", {"mine"}),
        ("other_driver", set()),
        ("offered_driver", {"mine", "offered"}),
        ("staff", {"mine", "offered", "elsewhere"}),
    ],
)
def test_each_user_lists_only_the_rides_they_may_see(world, actor, sees):
    rides = {
        "mine": world.ride("accepted"),
        "offered": make_ride("requested"),
        "elsewhere": make_ride("completed"),
    }
    RideOffer.objects.create(ride=rides["offered"], driver=world.offered_driver, distance_km=2)
    RideOffer.objects.create(ride=rides["elsewhere"], driver=DriverFactory(), distance_km=2)

    response = world.client(actor).get("/api/rides")

    assert response.status_code == 200
    body = response.json()
    assert {r["id"] for r in body["results"]} == {rides[name].pk for name in sees}
    assert body["count"] == len(sees)
    for name, ride in rides.items():
        detail = world.client(actor).get(f"/api/rides/{ride.pk}")
        assert detail.status_code == (200 if name in sees else 404), (name, detail.content)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("actor", "action"),
    [("rider_b", ""), ("rider_b", "/cancel"), ("other_driver", "/accept"), ("other_driver", "")],
)
def test_someone_elses_ride_is_indistinguishable_from_a_missing_one(world, actor, action):
    ride = world.ride("accepted")
    client = world.client(actor)

    def call(ride_id: int):
        url = f"/api/rides/{ride_id}{action}"
        return client.post(url, {}, format="json") if action else client.get(url)

    existing, missing = call(ride.pk), call(ride.pk + 1000)

    assert_error(existing, 404, "not_found")
    assert existing.json() == missing.json()


ILLEGAL = [
    *(("accept", "driver", state) for state in ("accepted", "in_progress", "completed")),
    ("accept", "driver", "cancelled"),
    ("accept", "offered_driver", "cancelled"),
    *(("start", "driver", state) for state in ("in_progress", "completed", "cancelled")),
    *(("complete", "driver", state) for state in ("accepted", "completed", "cancelled")),
    *(("cancel", "rider_a", state) for state in ("in_progress", "completed", "cancelled")),
    *(("cancel", "driver", state) for state in ("in_progress", "completed", "cancelled")),
]


@pytest.mark.django_db
@pytest.mark.parametrize(("action", "actor", "state"), ILLEGAL)
def test_an_illegal_transition_answers_409_and_changes_nothing(world, action, actor, state):
    ride = world.ride(state)
    client = world.client(actor)
    body = COMPLETE_BODY if action == "complete" else {}
    before = db_snapshot()

    response = client.post(f"/api/rides/{ride.pk}/{action}", body, format="json")

    error = assert_error(response, 409, "invalid_transition")
    assert f"is {state}" in error["message"]
    assert db_snapshot() == before
