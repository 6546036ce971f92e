"""The OpenAPI description's shared parts: every operation's error answers, in the one error shape.

Which errors an operation can give follows from what its view does, so no view lists them by
hand: its authentication and permissions (401, 403), its throttles (429 with `Retry-After`), its
input serializer and query parameters (400, 415), the lookups in its path (404), `@idempotent`
(the `Idempotency-Key` header, 400 and 409), and the database every view reads (503). A view adds
only the codes its service raises, by name, as `api_errors = {"post": ["invalid_transition"]}`;
`ERRORS` below is the one catalogue of codes, their status and a sample message.
"""

from drf_spectacular import openapi
from drf_spectacular.utils import OpenApiParameter
from rest_framework import serializers
from rest_framework.authentication import SessionAuthentication
from rest_framework.permissions import AllowAny, IsAuthenticated

# code: (status, a message it is given with, when)
ERRORS: dict[str, tuple[int, str, str]] = {
    "invalid": (400, "Invalid input.", "a field or query parameter is wrong: see `fields`"),
    "parse_error": (400, "JSON parse error - Expecting value.", "the body is not JSON"),
    "too_large": (400, "The request body is too large.", "the body exceeds MAX_BODY_BYTES"),
    "invalid_idempotency_key": (
        400,
        "Idempotency-Key must be 1 to 255 printable characters.",
        "the `Idempotency-Key` header is malformed",
    ),
    "invalid_credentials": (400, "Wrong email or password.", "the credentials do not match"),
    "invalid_promo_code": (400, "Unknown promo code.", "the promo code cannot be redeemed"),
    "otp_required": (
        400,
        "Staff accounts sign in with a second-factor code: send otp_token.",
        "a staff account needs `otp_token`",
    ),
    "otp_enrolment_required": (
        400,
        "This staff account needs two-factor sign-in: enrol in the admin first.",
        "a staff account has no second factor yet",
    ),
    "invalid_otp": (400, "Wrong second-factor code.", "the second-factor code is wrong"),
    "not_authenticated": (
        401,
        "Authentication credentials were not provided.",
        "no `Authorization: Token <key>` header (nor a session)",
    ),
    "authentication_failed": (401, "Invalid token.", "the token is unknown or its user inactive"),
    "permission_denied": (
        403,
        "You do not have permission to do this.",
        "the user's role may not do this (or a session request lacks its CSRF token)",
    ),
    "not_found": (404, "Not found.", "no such object among those the user may see"),
    "unsupported_media_type": (
        415,
        'Unsupported media type "text/plain" in request.',
        "the body is not `application/json`",
    ),
    "idempotency_key_reused": (
        409,
        "This Idempotency-Key was used for a different request.",
        "the key was used before with another body",
    ),
    "invalid_transition": (
        409,
        "A ride that is completed cannot become accepted.",
        "the object's state does not allow this step",
    ),
    "ride_in_progress": (409, "You already have a ride under way.", "one ride at a time"),
    "driver_unavailable": (
        409,
        "Set yourself available before accepting rides.",
        "the driver is off duty",
    ),
    "driver_busy": (409, "Finish your current ride first.", "the driver has a ride under way"),
    "not_refundable": (
        409,
        "A failed payment cannot be refunded.",
        "the payment is not captured",
    ),
    "already_resolved": (
        409,
        "This dead letter was already retried.",
        "the dead letter was retried or discarded before",
    ),
    "throttled": (
        429,
        "Request was throttled. Expected available in 2 seconds.",
        "too many requests: wait `Retry-After` seconds",
    ),
    "locked_out": (
        429,
        "Too many failed sign-ins. Try again in 15 minutes.",
        "the account or address is locked out after failed sign-ins: wait `Retry-After` seconds",
    ),
    "unavailable": (
        503,
        "The service is briefly unavailable; try again shortly.",
        "the database is briefly unreachable: retry after `Retry-After` seconds",
    ),
}

STATUS_DESCRIPTIONS = {
    400: "Bad request",
    401: "Not authenticated",
    403: "Forbidden",
    404: "Not found",
    409: "Conflict",
    415: "Unsupported media type",
    429: "Too many requests",
    503: "Service unavailable",
}

RETRY_AFTER = {
    "Retry-After": {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 0},
        "required": True,
    }
}

IDEMPOTENCY_KEY = OpenApiParameter(
    "Idempotency-Key",
    str,
    OpenApiParameter.HEADER,
    description=(
        "Makes the request safe to repeat: a repeat with the same key (even a racing one) "
        "replays the first success, with `Idempotent-Replayed: true`, and creates nothing; "
        "the same key with another body answers 409 `idempotency_key_reused`. A failed "
        "request does not use up its key."
    ),
    pattern=r"^[\x20-\x7e]{1,255}$",
)


NO_NUL = r"^[^\u0000]*$"
NOT_BLANK = r"^[^\u0000]*[^\s\u0000][^\u0000]*$"  # DRF trims text, then refuses it blank


class ErrorDetailSerializer(serializers.Serializer):
    code = serializers.CharField(help_text="Stable snake_case code; each answer lists its codes.")
    message = serializers.CharField(help_text="A sentence for people.")
    fields = serializers.DictField(
        child=serializers.JSONField(),
        help_text="Per field (or query parameter), its messages; empty unless `code` is invalid.",
    )


class ErrorSerializer(serializers.Serializer):
    """Every error the API answers has this shape."""

    error = ErrorDetailSerializer()


def idempotency_of(view, method: str) -> bool:
    handler = getattr(view, method.lower(), None)
    return bool(getattr(handler, "idempotent", False))


class AutoSchema(openapi.AutoSchema):
    """drf-spectacular's AutoSchema, plus the error answers and headers each view can give."""

    def get_tags(self) -> list[str]:
        """One tag per resource (`rides`, `drivers`, `jobs`, `ops`, ...): a client's modules."""
        return [self.path.strip("/").split("/")[1]] if self.path.startswith("/api/") else ["api"]

    def _map_serializer_field(self, field, direction, bypass_extensions=False):
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        # DRF refuses a NUL in any text (PostgreSQL cannot store it), and a blank one unless
        # allowed: say so
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum"} & set(schema)
        ):
            blank_refused = field.trim_whitespace and not field.allow_blank
            schema["pattern"] = NOT_BLANK if blank_refused else NO_NUL
        return schema

    def get_override_parameters(self):
        parameters = super().get_override_parameters()
        if idempotency_of(self.view, self.method):
            parameters = [*parameters, IDEMPOTENCY_KEY]
        return parameters

    def _get_response_bodies(self, direction="response"):
        responses = super()._get_response_bodies(direction)
        if direction != "response":
            return responses
        by_status: dict[int, list[str]] = {}
        for code in self.error_codes():
            by_status.setdefault(ERRORS[code][0], []).append(code)
        for status, codes in sorted(by_status.items()):
            responses.setdefault(str(status), self._error_response(status, codes))
        return responses

    def _error_response(self, status: int, codes: list[str]) -> dict:
        listed = "; ".join(f"`{code}`: {ERRORS[code][2]}" for code in codes)
        response = {
            "description": f"{STATUS_DESCRIPTIONS[status]}. Codes: {listed}.",
            "content": {
                "application/json": {
                    "schema": self.resolve_serializer(ErrorSerializer, "response").ref,
                    "examples": {
                        code: {
                            "summary": f"{code}: {ERRORS[code][2]}",
                            "value": {
                                "error": {
                                    "code": code,
                                    "message": ERRORS[code][1],
                                    "fields": _sample_fields(code),
                                }
                            },
                        }
                        for code in codes
                    },
                }
            },
        }
        if status in (429, 503):
            response["headers"] = RETRY_AFTER
        return response

    def error_codes(self) -> list[str]:
        """The codes this operation can answer, derived from its view, then the view's own."""
        view, method = self.view, self.method
        codes: list[str] = []
        authenticators = view.get_authenticators()
        permissions = view.get_permissions()
        if authenticators:
            codes += ["not_authenticated", "authentication_failed"]
        if authenticators and not all(isinstance(p, AllowAny) for p in permissions):
            restricted = any(not isinstance(p, (IsAuthenticated, AllowAny)) for p in permissions)
            session_write = method not in ("GET", "HEAD", "OPTIONS") and any(
                isinstance(a, SessionAuthentication) for a in authenticators
            )
            if restricted or session_write:
                codes.append("permission_denied")
        if self._reads_input():
            codes += ["invalid", "parse_error", "too_large", "unsupported_media_type"]
        elif self._has_query_parameters():
            codes.append("invalid")
        if idempotency_of(view, method):
            codes += ["invalid_idempotency_key", "idempotency_key_reused"]
        if "{" in self.path or (self._is_list_view() and self._get_paginator()):
            codes.append("not_found")
        if view.get_throttles():
            codes.append("throttled")
        codes += self.view_error_codes()
        codes.append("unavailable")
        return list(dict.fromkeys(codes))

    def view_error_codes(self) -> list[str]:
        declared = getattr(self.view, "api_errors", {})
        return list(declared.get(self.method.lower(), []))

    def _reads_input(self) -> bool:
        return self.method in ("POST", "PUT", "PATCH") and bool(self._get_request_body())

    def _has_query_parameters(self) -> bool:
        return any(p.get("in") == "query" for p in self._get_parameters())


def _sample_fields(code: str) -> dict:
    if code == "invalid":
        return {"field_name": ["This field is required."]}
    return {}


def link(operation_id: str, parameter: str, expression: str, description: str) -> dict:
    return {
        "operationId": operation_id,
        "parameters": {parameter: expression},
        "description": description,
    }


_RIDE = "$response.body#/id"
GET_RIDE = link("api_rides_retrieve", "ride_id", _RIDE, "Read the ride.")
ACCEPT = link("api_rides_accept_create", "ride_id", _RIDE, "A driver takes the ride.")
START = link("api_rides_start_create", "ride_id", _RIDE, "The driver picked the rider up.")
COMPLETE = link("api_rides_complete_create", "ride_id", _RIDE, "The driver drops the rider off.")
CANCEL = link("api_rides_cancel_create", "ride_id", _RIDE, "The rider or driver cancels.")
FIRST_JOB = link(
    "api_jobs_retrieve", "job_id", "$response.body#/jobs/0/id", "The ride's first job."
)
# (operationId, status) -> the operations its answer leads to: the ride flow, a job's status and
# the dead-letter actions. schemathesis's stateful phase follows them.
LINKS: dict[tuple[str, str], dict[str, dict]] = {
    ("api_rides_create", "201"): {
        "GetRide": GET_RIDE,
        "AcceptRide": ACCEPT,
        "CancelRide": CANCEL,
        "GetJob": FIRST_JOB,
    },
    ("api_rides_retrieve", "200"): {
        "AcceptRide": ACCEPT,
        "CancelRide": CANCEL,
        "GetJob": FIRST_JOB,
    },
    ("api_rides_accept_create", "200"): {
        "StartRide": START,
        "CancelRide": CANCEL,
        "GetRide": GET_RIDE,
    },
    ("api_rides_start_create", "200"): {"CompleteRide": COMPLETE, "GetRide": GET_RIDE},
    ("api_rides_complete_create", "200"): {"GetRide": GET_RIDE, "GetJob": FIRST_JOB},
    ("api_rides_cancel_create", "200"): {"GetRide": GET_RIDE},
    ("api_ops_dead_letters_list", "200"): {
        "RetryDeadLetter": link(
            "api_ops_dead_letters_retry_create",
            "dead_letter_id",
            "$response.body#/results/0/id",
            "Retry the first dead letter listed.",
        ),
        "DiscardDeadLetter": link(
            "api_ops_dead_letters_discard_create",
            "dead_letter_id",
            "$response.body#/results/0/id",
            "Discard the first dead letter listed.",
        ),
    },
    ("api_ops_dead_letters_retry_create", "201"): {
        "GetJob": link("api_jobs_retrieve", "job_id", "$response.body#/id", "The new job.")
    },
    ("api_payments_refunds_create", "202"): {
        "GetPayment": link(
            "api_payments_retrieve", "payment_id", "$response.body#/payment", "The payment."
        )
    },
}


def _routes(patterns, prefix: str = ""):
    """(path, callback) of every URL pattern without parameters, included ones too."""
    for pattern in patterns:
        route = prefix + str(pattern.pattern)
        if hasattr(pattern, "url_patterns"):
            yield from _routes(pattern.url_patterns, route)
        elif "<" not in route:
            yield "/" + route.lstrip("^").rstrip("$"), pattern.callback


def webhook_operations() -> dict[str, dict]:
    """The provider webhooks, which are plain Django views: each declares its own operation as
    `webhook_schema` (on the function, or on the class of a class-based view), or a function
    returning it (None: not documented, e.g. a provider not in use)."""
    from django.urls import get_resolver

    paths = {}
    for path, callback in _routes(get_resolver().url_patterns):
        view = getattr(callback, "view_class", callback)
        operation = getattr(view, "webhook_schema", None)
        if callable(operation):
            operation = operation()
        if operation:
            paths[path] = {"post": {"tags": ["webhooks"], **operation}}
    return paths


def _without_blank_branch(prop: dict) -> dict:
    """drf-spectacular documents a blank-allowed text with a pattern as `oneOf: [text, ""]`,
    which a blank matches twice (so a blank is invalid); the NUL pattern already allows it."""
    branches = prop.get("oneOf", [])
    if len(branches) == 2 and branches[1] == {"type": "string", "maxLength": 0}:
        text = branches[0]
        if text.get("pattern") == NO_NUL and not {"minLength", "format"} & set(text):
            return {**{k: v for k, v in prop.items() if k != "oneOf"}, **text}
    return prop


TOO_LONG = {
    "description": "The request line is longer than the web server takes (gunicorn's"
    " `limit_request_line`, 4,094 bytes): answered by the server before the API sees it."
}


def postprocess(result: dict, generator, request, public) -> dict:
    """Add the links between operations, the web server's 414 and the provider webhooks to the
    generated schema."""
    for path_item in result["paths"].values():
        for operation in path_item.values():
            operation["responses"].setdefault("414", TOO_LONG)
            for status, response in operation["responses"].items():
                links = LINKS.get((operation["operationId"], status))
                if links:
                    response["links"] = links
    for component in result.get("components", {}).get("schemas", {}).values():
        for name, prop in component.get("properties", {}).items():
            component["properties"][name] = _without_blank_branch(prop)
    result["paths"].update(webhook_operations())
    components = result.setdefault("components", {})
    components.setdefault("securitySchemes", {})["webhookBasicAuth"] = {
        "type": "http",
        "scheme": "basic",
        "description": "The `user:password` of ANYMAIL_WEBHOOK_SECRET, set at the provider.",
    }
    return result
