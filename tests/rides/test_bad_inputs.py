"""Bad input to every accounts, rides and drivers endpoint: a 4xx in the error shape, no 500,
and nothing written (rows counted, rides and drivers compared before and after)."""

import json

import pytest

from tests.rides.conftest import (
    COMPLETE_BODY,
    DROPOFF,
    PICKUP,
    RIDE_BODY,
    assert_error,
    db_snapshot,
)

HUGE = "x" * (65 * 1024)  # with the rest of the body, past the 64 KiB limit
REGISTER = {
    "email": "new@example.com",
    "password": "a-good-long-pass-9",
    "name": "N",
    "role": "rider",
}
TOKEN = {"email": "nobody@example.com", "password": "a-good-long-pass-9"}
ACTION_STATE = {"accept": "requested", "start": "accepted", "complete": "in_progress"}


def bad(case_id, method, path, body=None, *, actor, status=400, code="invalid", fields=(), **kw):
    """One row of the table. `raw` sends bytes as they are (with `content_type`); `headers`
    are extra request headers; `fields` are the names `error.fields` must contain."""
    request = {
        "raw": kw.pop("raw", None),
        "content_type": kw.pop("content_type", "application/json"),
        "headers": kw.pop("headers", {}),
    }
    assert not kw, kw
    return pytest.param(method, path, actor, body, request, status, code, set(fields), id=case_id)


def malformed(prefix, path, actor):
    """The same transport-level mistakes, for every endpoint that reads a body."""
    return [
        bad(
            f"{prefix}-malformed-json", "POST", path, actor=actor, raw='{"lat": 1,',
            code="parse_error",
        ),
        bad(
            f"{prefix}-nan-literal", "POST", path, actor=actor, raw='{"lat": NaN}',
            code="parse_error",
        ),
        bad(
            f"{prefix}-form-encoded", "POST", path, actor=actor, raw="lat=1&lng=2",
            content_type="application/x-www-form-urlencoded", status=415,
            code="unsupported_media_type",
        ),
        bad(
            f"{prefix}-text-plain", "POST", path, actor=actor, raw="{}", content_type="text/plain",
            status=415, code="unsupported_media_type",
        ),
        bad(
            f"{prefix}-deeply-nested-json", "POST", path, actor=actor, raw="[" * 5000 + "]" * 5000,
            code="parse_error",
        ),
        bad(
            f"{prefix}-decompressing-charset", "POST", path, actor=actor, raw="{}",
            content_type="application/json; charset=bz2_codec", code="parse_error",
        ),
        bad(f"{prefix}-json-list", "POST", path, [], actor=actor, fields=["non_field_errors"]),
        bad(f"{prefix}-json-string", "POST", path, "hi", actor=actor, fields=["non_field_errors"]),
    ]  # fmt: skip


def huge(prefix, path, actor, body):
    """A body that would be valid but for its size (> 64 KiB)."""
    raw = json.dumps({**body, "padding": HUGE}) if isinstance(body, dict) else body
    return bad(f"{prefix}-body-over-64k", "POST", path, actor=actor, raw=raw, code="too_large")


def point(**overrides) -> dict:
    return {**PICKUP, **overrides}


R, C = "/api/rides", "/api/rides/{ride}/complete"
LOC, AV = "/api/drivers/me/location", "/api/drivers/me/availability"
KEY = "HTTP_IDEMPOTENCY_KEY"

CASES = [
    # --- POST /api/auth/register -------------------------------------------------------------
    bad("register-empty", "POST", "/api/auth/register", {}, actor="anon",
        fields=["email", "password", "name", "role"]),
    bad("register-no-body", "POST", "/api/auth/register", actor="anon", raw="",
        fields=["email", "password", "name", "role"]),
    bad("register-missing-role", "POST", "/api/auth/register",
        {k: v for k, v in REGISTER.items() if k != "role"}, actor="anon", fields=["role"]),
    bad("register-unknown-role", "POST", "/api/auth/register", {**REGISTER, "role": "admin"},
        actor="anon", fields=["role"]),
    bad("register-role-list", "POST", "/api/auth/register", {**REGISTER, "role": ["rider"]},
        actor="anon", fields=["role"]),
    bad("register-bad-email", "POST", "/api/auth/register", {**REGISTER, "email": "not-mail"},
        actor="anon", fields=["email"]),
    bad("register-long-email", "POST", "/api/auth/register",
        {**REGISTER, "email": "a" * 140 + "@example.com"}, actor="anon", fields=["email"]),
    bad("register-blank-name", "POST", "/api/auth/register", {**REGISTER, "name": ""},
        actor="anon", fields=["name"]),
    bad("register-long-name", "POST", "/api/auth/register", {**REGISTER, "name": "n" * 121},
        actor="anon", fields=["name"]),
    bad("register-name-object", "POST", "/api/auth/register", {**REGISTER, "name": {"a": 1}},
        actor="anon", fields=["name"]),
    bad("register-short-password", "POST", "/api/auth/register", {**REGISTER, "password": "ab1"},
        actor="anon", fields=["password"]),
    bad("register-numeric-password", "POST", "/api/auth/register",
        {**REGISTER, "password": 48213975620183}, actor="anon", fields=["password"]),
    bad("register-common-password", "POST", "/api/auth/register",
        {**REGISTER, "password": "password123"}, actor="anon", fields=["password"]),
    bad("register-null-password", "POST", "/api/auth/register", {**REGISTER, "password": None},
        actor="anon", fields=["password"]),
    bad("register-idempotency-key-too-long", "POST", "/api/auth/register", REGISTER, actor="anon",
        headers={KEY: "k" * 256}, code="invalid_idempotency_key"),
    *malformed("register", "/api/auth/register", "anon"),
    huge("register", "/api/auth/register", "anon", REGISTER),
    # --- POST /api/auth/token ----------------------------------------------------------------
    bad("token-empty", "POST", "/api/auth/token", {}, actor="anon", fields=["email", "password"]),
    bad("token-unknown-account", "POST", "/api/auth/token", TOKEN, actor="anon",
        code="invalid_credentials"),
    bad("token-email-object", "POST", "/api/auth/token", {**TOKEN, "email": {"a": 1}},
        actor="anon", fields=["email"]),
    bad("token-password-list", "POST", "/api/auth/token", {**TOKEN, "password": ["x"]},
        actor="anon", fields=["password"]),
    *malformed("token", "/api/auth/token", "anon"),
    huge("token", "/api/auth/token", "anon", TOKEN),
    # --- POST /api/rides ---------------------------------------------------------------------
    bad("ride-empty", "POST", R, {}, actor="rider", fields=["pickup", "dropoff"]),
    bad("ride-no-body", "POST", R, actor="rider", raw="", fields=["pickup", "dropoff"]),
    bad("ride-missing-dropoff", "POST", R, {"pickup": PICKUP}, actor="rider", fields=["dropoff"]),
    bad("ride-pickup-string", "POST", R, {**RIDE_BODY, "pickup": "Alexanderplatz"},
        actor="rider", fields=["pickup"]),
    bad("ride-pickup-list", "POST", R, {**RIDE_BODY, "pickup": [52.5, 13.4]}, actor="rider",
        fields=["pickup"]),
    bad("ride-pickup-null", "POST", R, {**RIDE_BODY, "pickup": None}, actor="rider",
        fields=["pickup"]),
    bad("ride-pickup-missing-lng", "POST", R, {**RIDE_BODY, "pickup": {"lat": 52.5}},
        actor="rider", fields=["pickup"]),
    bad("ride-lat-91", "POST", R, {**RIDE_BODY, "pickup": point(lat=91)}, actor="rider",
        fields=["pickup"]),
    bad("ride-lat-minus-91", "POST", R, {**RIDE_BODY, "dropoff": point(lat=-91)}, actor="rider",
        fields=["dropoff"]),
    bad("ride-lng-minus-181", "POST", R, {**RIDE_BODY, "dropoff": point(lng=-181)},
        actor="rider", fields=["dropoff"]),
    bad("ride-lng-181", "POST", R, {**RIDE_BODY, "pickup": point(lng=181)}, actor="rider",
        fields=["pickup"]),
    bad("ride-lat-text", "POST", R, {**RIDE_BODY, "pickup": point(lat="north")}, actor="rider",
        fields=["pickup"]),
    bad("ride-lat-nan-string", "POST", R, {**RIDE_BODY, "pickup": point(lat="NaN")},
        actor="rider", fields=["pickup"]),
    bad("ride-lat-overflowing-number", "POST", R, actor="rider", fields=["pickup"],
        raw='{"pickup": {"lat": 1e999, "lng": 13.4}, "dropoff": {"lat": 52.5, "lng": 13.4}}'),
    bad("ride-lat-boolean", "POST", R, {**RIDE_BODY, "pickup": point(lat=True)}, actor="rider",
        fields=["pickup"]),
    bad("ride-idempotency-key-too-long", "POST", R, RIDE_BODY, actor="rider",
        headers={KEY: "k" * 256}, code="invalid_idempotency_key"),
    bad("ride-idempotency-key-empty", "POST", R, RIDE_BODY, actor="rider", headers={KEY: ""},
        code="invalid_idempotency_key"),
    bad("ride-idempotency-key-control-char", "POST", R, RIDE_BODY, actor="rider",
        headers={KEY: "abc\x07"}, code="invalid_idempotency_key"),
    *malformed("ride", R, "rider"),
    huge("ride", R, "rider", RIDE_BODY),
    # --- GET /api/rides, /api/rides/{id}, /api/drivers/me/offers ------------------------------
    bad("list-page-text", "GET", R + "?page=abc", actor="owner"),
    bad("list-page-zero", "GET", R + "?page=0", actor="owner"),
    bad("list-page-negative", "GET", R + "?page=-1", actor="owner"),
    bad("list-page-past-bound", "GET", R + "?page=1000001", actor="owner"),
    bad("list-page-size-text", "GET", R + "?page_size=many", actor="owner"),
    bad("list-page-size-zero", "GET", R + "?page_size=0", actor="owner"),
    bad("list-page-size-negative", "GET", R + "?page_size=-5", actor="owner"),
    bad("list-page-size-past-100", "GET", R + "?page_size=101", actor="owner"),
    bad("list-page-size-decimal", "GET", R + "?page_size=2.5", actor="owner"),
    bad("list-page-past-end", "GET", R + "?page=9", actor="owner", status=404, code="not_found"),
    bad("detail-unknown-id", "GET", R + "/987654321", actor="owner", status=404,
        code="not_found"),
    bad("detail-id-past-bigint", "GET", R + "/99999999999999999999999", actor="owner",
        status=404, code="not_found"),
    bad("detail-id-text", "GET", R + "/abc", actor="owner", status=404, code="not_found"),
    bad("detail-id-negative", "GET", R + "/-1", actor="owner", status=404, code="not_found"),
    bad("offers-page-text", "GET", "/api/drivers/me/offers?page=x", actor="driver"),
    bad("rides-delete", "DELETE", R + "/{ride}", actor="owner", status=405,
        code="method_not_allowed"),
    bad("rides-put", "PUT", R, RIDE_BODY, actor="rider", status=405, code="method_not_allowed"),
    bad("accept-get", "GET", R + "/{ride}/accept", actor="driver", status=405,
        code="method_not_allowed"),
    # --- POST /api/rides/{id}/accept, /start -------------------------------------------------
    bad("accept-unknown-id", "POST", R + "/987654321/accept", actor="driver", status=404,
        code="not_found"),
    bad("accept-id-past-bigint", "POST", R + "/99999999999999999999999/accept", actor="driver",
        status=404, code="not_found"),
    bad("accept-id-zero", "POST", R + "/0/accept", actor="driver", status=404, code="not_found"),
    bad("accept-id-text", "POST", R + "/abc/accept", actor="driver", status=404,
        code="not_found"),
    bad("start-unknown-id", "POST", R + "/987654321/start", actor="driver", status=404,
        code="not_found"),
    # --- POST /api/rides/{id}/complete -------------------------------------------------------
    bad("complete-empty", "POST", C, {}, actor="driver", fields=["distance_km", "duration_min"]),
    bad("complete-missing-duration", "POST", C, {"distance_km": "3.00"}, actor="driver",
        fields=["duration_min"]),
    bad("complete-negative-distance", "POST", C, {**COMPLETE_BODY, "distance_km": "-1.00"},
        actor="driver", fields=["distance_km"]),
    bad("complete-distance-text", "POST", C, {**COMPLETE_BODY, "distance_km": "far"},
        actor="driver", fields=["distance_km"]),
    bad("complete-distance-nan", "POST", C, {**COMPLETE_BODY, "distance_km": "NaN"},
        actor="driver", fields=["distance_km"]),
    bad("complete-distance-too-far", "POST", C, {**COMPLETE_BODY, "distance_km": "5000.01"},
        actor="driver", fields=["distance_km"]),
    bad("complete-distance-huge-number", "POST", C, {**COMPLETE_BODY, "distance_km": 1e12},
        actor="driver", fields=["distance_km"]),
    bad("complete-distance-three-decimals", "POST", C, {**COMPLETE_BODY, "distance_km": "4.125"},
        actor="driver", fields=["distance_km"]),
    bad("complete-distance-boolean", "POST", C, {**COMPLETE_BODY, "distance_km": True},
        actor="driver", fields=["distance_km"]),
    bad("complete-negative-duration", "POST", C, {**COMPLETE_BODY, "duration_min": -5},
        actor="driver", fields=["duration_min"]),
    bad("complete-fractional-duration", "POST", C, {**COMPLETE_BODY, "duration_min": 1.5},
        actor="driver", fields=["duration_min"]),
    bad("complete-duration-text", "POST", C, {**COMPLETE_BODY, "duration_min": "long"},
        actor="driver", fields=["duration_min"]),
    bad("complete-duration-over-a-day", "POST", C, {**COMPLETE_BODY, "duration_min": 1441},
        actor="driver", fields=["duration_min"]),
    bad("complete-unknown-id", "POST", R + "/987654321/complete", COMPLETE_BODY, actor="driver",
        status=404, code="not_found"),
    *malformed("complete", C, "driver"),
    huge("complete", C, "driver", COMPLETE_BODY),
    # --- POST /api/rides/{id}/cancel ---------------------------------------------------------
    bad("cancel-long-reason", "POST", R + "/{ride}/cancel", {"reason": "r" * 201}, actor="owner",
        fields=["reason"]),
    bad("cancel-null-reason", "POST", R + "/{ride}/cancel", {"reason": None}, actor="owner",
        fields=["reason"]),
    bad("cancel-reason-object", "POST", R + "/{ride}/cancel", {"reason": {"why": 1}},
        actor="owner", fields=["reason"]),
    bad("cancel-unknown-id", "POST", R + "/987654321/cancel", {}, actor="owner", status=404,
        code="not_found"),
    *malformed("cancel", R + "/{ride}/cancel", "owner"),
    huge("cancel", R + "/{ride}/cancel", "owner", {"reason": "late"}),
    # --- POST /api/drivers/me/availability ---------------------------------------------------
    bad("availability-empty", "POST", AV, {}, actor="driver", fields=["available"]),
    bad("availability-maybe", "POST", AV, {"available": "maybe"}, actor="driver",
        fields=["available"]),
    bad("availability-null", "POST", AV, {"available": None}, actor="driver",
        fields=["available"]),
    bad("availability-list", "POST", AV, {"available": [True]}, actor="driver",
        fields=["available"]),
    *malformed("availability", AV, "driver"),
    huge("availability", AV, "driver", {"available": False}),
    # --- POST /api/drivers/me/location -------------------------------------------------------
    bad("location-empty", "POST", LOC, {}, actor="driver", fields=["lat", "lng"]),
    bad("location-lat-91", "POST", LOC, point(lat=91), actor="driver", fields=["lat"]),
    bad("location-lng-minus-181", "POST", LOC, point(lng=-181), actor="driver", fields=["lng"]),
    bad("location-lat-text", "POST", LOC, point(lat="north"), actor="driver", fields=["lat"]),
    bad("location-lat-null", "POST", LOC, point(lat=None), actor="driver", fields=["lat"]),
    bad("location-lat-boolean", "POST", LOC, point(lat=False), actor="driver", fields=["lat"]),
    bad("location-lng-infinity", "POST", LOC, point(lng="Infinity"), actor="driver",
        fields=["lng"]),
    *malformed("location", LOC, "driver"),
    huge("location", LOC, "driver", DROPOFF),
]  # fmt: skip


def _send(client, method: str, path: str, body, request: dict):
    headers = request["headers"]
    if method != "POST":
        return client.generic(method, path, json.dumps(body), "application/json", **headers)
    if request["raw"] is not None:
        return client.post(
            path, data=request["raw"], content_type=request["content_type"], **headers
        )
    return client.post(path, body, format="json", **headers)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("method", "path", "actor", "body", "request_", "status", "code", "fields"), CASES
)
def test_bad_input_answers_4xx_in_the_error_shape_and_writes_nothing(
    world, method, path, actor, body, request_, status, code, fields
):
    action = path.rsplit("/", 1)[-1]
    ride = world.ride(ACTION_STATE.get(action, "accepted"))
    client = world.client({"rider": "rider_b", "owner": "rider_a"}.get(actor, actor))
    before = db_snapshot()

    response = _send(client, method, path.format(ride=ride.pk), body, request_)

    error = assert_error(response, status, code)
    assert fields <= set(error["fields"]), error
    assert db_snapshot() == before
