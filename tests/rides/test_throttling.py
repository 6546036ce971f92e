"""Rate limits: ride requests per user (scope `ride_create`, 30/min) and sign-in per client
(scope `auth`, 20/min). The autouse `_fresh_throttles` fixture starts each test at zero."""

import pytest

from rides.models import Ride
from tests.conftest import client_for
from tests.factories import PASSWORD
from tests.rides.conftest import RIDE_BODY, assert_error


def _request_ride(client):
    return client.post("/api/rides", RIDE_BODY, format="json")


@pytest.mark.django_db
def test_the_31st_ride_request_in_a_minute_answers_429(as_rider, rider):
    statuses = [_request_ride(as_rider).status_code for _ in range(30)]
    assert statuses == [201] + [409] * 29  # one ride under way, then conflicts: all counted
    Ride.objects.update(status="cancelled")  # a 31st request would now be accepted

    response = _request_ride(as_rider)

    error = assert_error(response, 429, "throttled")
    assert "throttled" in error["message"].lower()
    assert 0 < int(response["Retry-After"]) <= 60
    assert Ride.objects.filter(rider=rider).count() == 1


@pytest.mark.django_db
def test_the_ride_limit_is_per_user_and_only_for_requests(as_rider, other_rider):
    for _ in range(30):
        _request_ride(as_rider)
    assert_error(_request_ride(as_rider), 429, "throttled")

    assert _request_ride(client_for(other_rider.user)).status_code == 201
    assert as_rider.get("/api/rides").status_code == 200
    assert Ride.objects.count() == 2


@pytest.mark.django_db
def test_the_21st_sign_in_in_a_minute_answers_429(anon, rider):
    body = {"email": rider.user.email, "password": PASSWORD}
    statuses = [anon.post("/api/auth/token", body, format="json").status_code for _ in range(20)]
    assert statuses == [200] * 20

    assert_error(anon.post("/api/auth/token", body, format="json"), 429, "throttled")
