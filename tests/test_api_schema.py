"""/api/schema/ documents every answer: the error statuses and codes each operation can give, in
the one error shape, the query parameters' bounds, the Idempotency-Key header, examples, the
ride flow's links and the provider webhooks."""

import pytest

from bimride.schema import ERRORS, TOO_LONG

pytestmark = pytest.mark.django_db

ERROR_REF = "#/components/schemas/Error"


@pytest.fixture
def schema(anon) -> dict:
    response = anon.get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            yield path, method, operation


def codes(operation: dict, status: str) -> set[str]:
    examples = operation["responses"][status]["content"]["application/json"]["examples"]
    return {example["value"]["error"]["code"] for example in examples.values()}


def test_every_api_operation_documents_its_errors_in_the_one_shape(schema):
    for path, method, operation in operations(schema):
        if not path.startswith("/api/"):
            continue
        label = f"{method.upper()} {path}"
        errors = {s: r for s, r in operation["responses"].items() if s >= "400"}
        assert "503" in errors and "429" in errors, label
        # the web server's, for a request line past its limit, before the API sees it
        assert "content" not in errors.pop("414") and "gunicorn" in TOO_LONG["description"]
        for status, response in errors.items():
            body = response["content"]["application/json"]
            assert body["schema"] == {"$ref": ERROR_REF}, label
            for code in codes(operation, status):
                assert ERRORS[code][0] == int(status), (label, code)
                assert f"`{code}`" in response["description"], (label, code)
        for status in ("429", "503"):
            assert errors[status]["headers"]["Retry-After"]["required"] is True, label


@pytest.mark.parametrize(
    ("method", "path", "status", "expected"),
    [
        ("post", "/api/rides", "409", {"idempotency_key_reused", "ride_in_progress"}),
        ("post", "/api/rides", "400", {"invalid", "invalid_idempotency_key", "invalid_promo_code"}),
        ("post", "/api/rides", "403", {"permission_denied"}),
        ("get", "/api/rides", "401", {"not_authenticated", "authentication_failed"}),
        ("get", "/api/rides", "400", {"invalid"}),
        ("get", "/api/rides/{ride_id}", "404", {"not_found"}),
        ("post", "/api/rides/{ride_id}/accept", "409", {"invalid_transition", "driver_busy"}),
        ("post", "/api/rides/{ride_id}/complete", "409", {"invalid_transition"}),
        ("post", "/api/ops/dead-letters/{dead_letter_id}/retry", "409", {"already_resolved"}),
        ("get", "/api/ops/queues", "403", {"permission_denied"}),
        ("post", "/api/auth/token", "400", {"invalid_credentials"}),
        ("post", "/api/auth/token", "429", {"throttled", "locked_out"}),
        ("post", "/api/auth/token", "400", {"otp_required", "invalid_otp"}),
        ("get", "/api/jobs/{job_id}", "503", {"unavailable"}),
    ],
)
def test_each_operation_lists_the_codes_its_view_can_answer(schema, method, path, status, expected):
    assert expected <= codes(schema["paths"][path][method], status)


@pytest.mark.parametrize(
    ("method", "path", "absent"),
    [
        ("post", "/api/auth/register", "401"),  # no authentication at all
        ("get", "/api/rides/{ride_id}", "403"),  # others' rides do not exist: 404
        ("get", "/api/ops/queues", "404"),  # neither a lookup nor a page
        ("post", "/api/rides/{ride_id}/accept", "400"),  # no input
    ],
)
def test_an_operation_documents_no_error_it_cannot_give(schema, method, path, absent):
    assert absent not in schema["paths"][path][method]["responses"]


def test_pages_and_filters_are_documented_with_their_bounds(schema):
    parameters = {p["name"]: p for p in schema["paths"]["/api/rides"]["get"]["parameters"]}
    assert parameters["page"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 1_000_000}
    assert parameters["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}
    letters = schema["paths"]["/api/ops/dead-letters"]["get"]["parameters"]
    status = next(p for p in letters if p["name"] == "status")
    assert set(status["schema"]["enum"]) == {"open", "resolved", "all"}
    assert "ignored" in schema["info"]["description"]


def test_the_idempotency_key_header_is_documented_where_it_applies(schema):
    def has_key(method, path):
        parameters = schema["paths"][path][method].get("parameters", [])
        return any(p["name"] == "Idempotency-Key" and p["in"] == "header" for p in parameters)

    assert has_key("post", "/api/rides")
    assert has_key("post", "/api/auth/register")
    assert has_key("post", "/api/payments/{payment_id}/refunds")
    assert not has_key("post", "/api/rides/{ride_id}/accept")


def test_the_ride_flow_job_status_and_dead_letters_have_examples_and_links(schema):
    paths = schema["paths"]
    create = paths["/api/rides"]["post"]
    assert create["requestBody"]["content"]["application/json"]["examples"]
    assert create["responses"]["201"]["content"]["application/json"]["examples"]
    assert set(create["responses"]["201"]["links"]) >= {"GetRide", "AcceptRide", "CancelRide"}
    accept = paths["/api/rides/{ride_id}/accept"]["post"]["responses"]["200"]
    assert accept["links"]["StartRide"]["operationId"] == "api_rides_start_create"
    start = paths["/api/rides/{ride_id}/start"]["post"]["responses"]["200"]
    assert start["links"]["CompleteRide"]["parameters"] == {"ride_id": "$response.body#/id"}
    job = paths["/api/jobs/{job_id}"]["get"]["responses"]["200"]["content"]["application/json"]
    assert job["examples"]
    retry = paths["/api/ops/dead-letters/{dead_letter_id}/retry"]["post"]
    examples = retry["requestBody"]["content"]["application/json"]["examples"]
    assert any("payload" in e["value"] for e in examples.values())
    operation_ids = {o["operationId"] for _, _, o in operations(schema)}
    for _, _, operation in operations(schema):
        for response in operation["responses"].values():
            for link in response.get("links", {}).values():
                assert link["operationId"] in operation_ids


def test_the_provider_webhooks_are_documented_as_webhooks(schema):
    stripe = schema["paths"]["/webhooks/stripe"]["post"]
    assert stripe["tags"] == ["webhooks"] and stripe["security"] == [{}]
    assert any(p["name"] == "Stripe-Signature" for p in stripe["parameters"])
    tracking = next(item["post"] for path, item in schema["paths"].items() if "anymail" in path)
    assert tracking["security"] == [{"webhookBasicAuth": []}]
    assert schema["components"]["securitySchemes"]["webhookBasicAuth"]["scheme"] == "basic"
    for webhook, codes_401 in (
        (stripe, ("invalid_signature", "webhook_closed")),
        (tracking, ("not_authenticated", "webhook_closed")),
    ):
        refused = webhook["responses"]["401"]
        assert refused["content"]["application/json"]["schema"]["$ref"] == ERROR_REF
        assert refused["headers"]["WWW-Authenticate"]["required"] is True
        assert all(f"`{code}`" in refused["description"] for code in codes_401)
        assert "400" not in webhook["responses"] and "403" not in webhook["responses"]


def test_every_id_in_a_path_is_documented_as_the_digits_a_route_matches(schema):
    digits = {"type": "integer", "minimum": 0, "maximum": 10**18 - 1}
    opaque = {"type": "string", "format": "uuid"}  # a job's opaque id (a Tasks API result id)
    for path, method, operation in operations(schema):
        for parameter in operation.get("parameters", []):
            if parameter["in"] != "path":
                continue
            label = f"{method.upper()} {path} {parameter['name']}"
            expected = opaque if parameter["name"].endswith("_uid") else digits
            assert parameter["schema"] == expected, label
            assert "not_found" in codes(operation, "404"), label


def test_the_description_says_what_every_api_path_answers_beyond_its_operations(schema):
    description = schema["info"]["description"]
    for promise in ("404 `not_found`", "405 `method_not_allowed`", "`Allow`", "415", "DEBUG"):
        assert promise in description
