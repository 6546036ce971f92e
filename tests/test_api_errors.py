"""Every answer under /api/ is JSON in the one error shape, with DEBUG on (as `make run` runs)
and off: unknown paths and malformed ids, methods an operation does not have, bodies the API
cannot read."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.fixture(params=[False, True], ids=["debug_off", "debug_on"])
def debug(request, settings):
    settings.DEBUG = request.param
    return request.param


def assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    error = response.json()["error"]
    assert error["code"] == code and set(error) == {"code", "message", "fields"}
    assert error["message"] and isinstance(error["fields"], dict)
    return error


MALFORMED_IDS = [
    "abc",
    "null,null",
    "null",
    "-1",
    "1.5",
    "1e3",
    "%20",
    "%00",
    "0x1f",
    "99999999999999999999",  # past a 64-bit id
    "9223372036854775808",  # one past the largest id the database holds
    "１２",  # full-width digits
]
ID_PATHS = [
    "/api/rides/{}",
    "/api/rides/{}/accept",
    "/api/rides/{}/start",
    "/api/rides/{}/complete",
    "/api/rides/{}/cancel",
    "/api/jobs/{}",
    "/api/ops/dead-letters/{}/retry",
    "/api/ops/dead-letters/{}/discard",
    "/api/payments/{}",
    "/api/payments/{}/refunds",
]


@pytest.mark.parametrize("path", ID_PATHS)
@pytest.mark.parametrize("ride_id", MALFORMED_IDS)
def test_a_malformed_id_answers_json_404(debug, as_staff, path, ride_id):
    method = as_staff.get if path.count("/") == 3 else as_staff.post
    assert_error(method(path.format(ride_id)), 404, "not_found")


@pytest.mark.parametrize(
    "path",
    [
        "/api/",
        "/api/nothing-here",
        "/api/rides/",
        "/api/rides/1/",
        "/api/rides/1/fly",
        "/api/schema/extra",
        "/api/v2/rides",
        "/api/rides/1%2F2",
    ],
)
@pytest.mark.parametrize("method", ["get", "post", "put", "delete"])
def test_an_unknown_api_path_answers_json_404(debug, anon, as_rider, path, method):
    for client in (anon, as_rider):
        assert_error(getattr(client, method)(path), 404, "not_found")


@pytest.mark.parametrize(
    ("method", "path", "allow"),
    [
        ("delete", "/api/rides", {"GET", "POST"}),
        ("put", "/api/rides/1", {"GET"}),
        ("get", "/api/rides/1/accept", {"POST"}),
        ("patch", "/api/drivers/me/availability", {"POST"}),
        ("get", "/api/auth/token", {"POST"}),
        ("delete", "/api/auth/register", {"POST"}),
        ("post", "/api/ops/queues", {"GET"}),
        ("get", "/api/payments/1/refunds", {"POST"}),
    ],
)
def test_a_method_an_operation_does_not_have_answers_405_with_allow(
    debug, as_staff, as_driver, method, path, allow
):
    client = as_driver if "accept" in path or "drivers" in path else as_staff
    response = getattr(client, method)(path)
    assert_error(response, 405, "method_not_allowed")
    assert allow <= {m.strip() for m in response["Allow"].split(",")}


@pytest.mark.parametrize(
    ("content_type", "body", "status", "code"),
    [
        ("application/json", b'{"email": ', 400, "parse_error"),
        ("application/json", b'{"email": "\xff"}', 400, "parse_error"),
        ("application/json", b"[" * 5_000 + b"]" * 5_000, 400, "parse_error"),
        ("text/plain", b"email=a", 415, "unsupported_media_type"),
        ("application/xml", b"<token/>", 415, "unsupported_media_type"),
        ("application/x-www-form-urlencoded", b"email=a&password=b", 415, "unsupported_media_type"),
        (
            "multipart/form-data; boundary=xx",
            b"--xx\r\n\r\n--xx--\r\n",
            415,
            "unsupported_media_type",
        ),
    ],
)
def test_a_body_the_api_cannot_read_answers_400_or_415(
    debug, anon, content_type, body, status, code
):
    response = anon.generic("POST", "/api/auth/token", body, content_type=content_type)
    assert_error(response, status, code)


def test_an_error_of_a_plain_view_under_api_is_json_too(debug, as_rider):
    # the schema view is DRF's, the docs page a plain one: neither takes a POST
    for path in ("/api/schema/", "/api/docs/"):
        response = as_rider.post(path)
        assert_error(response, 405, "method_not_allowed")
        assert "GET" in response["Allow"]
