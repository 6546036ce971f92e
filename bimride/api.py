"""API plumbing shared by every app: the error shape, pagination and idempotent writes."""

import functools
import hashlib
import hmac
import json
import logging
import re

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.db import connection, transaction
from django.http import HttpResponse, JsonResponse
from rest_framework import exceptions, status
from rest_framework.pagination import PageNumberPagination
from rest_framework.renderers import JSONRenderer
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler
from rest_framework.views import set_rollback

from bimride.errors import BimRideError, Conflict, ValidationError
from bimride.models import IdempotentRequest

logger = logging.getLogger(__name__)

IDEMPOTENCY_HEADER = "Idempotency-Key"


def error_body(code: str, message: str, fields: dict | None = None) -> dict:
    return {"error": {"code": code, "message": message, "fields": fields or {}}}


# What Django itself answers under /api/ (no DRF view ran, or a plain view refused), by status.
DJANGO_ERRORS = {
    400: ("bad_request", "The request could not be understood."),
    401: ("not_authenticated", "Authentication credentials were not provided."),
    403: ("permission_denied", "You do not have permission to do this."),
    404: ("not_found", "Not found."),
    405: ("method_not_allowed", "This method is not allowed here: see the Allow header."),
    406: ("not_acceptable", "This resource answers JSON only."),
    413: ("too_large", "The request body is too large."),
    415: ("unsupported_media_type", "The request body must be JSON."),
    429: ("throttled", "Too many requests: wait Retry-After seconds."),
    500: ("server_error", "Something went wrong on our side."),
}
KEPT_HEADERS = ("Allow", "Retry-After", "WWW-Authenticate")


class ApiErrorMiddleware:
    """Every error answer under /api/ is JSON in the error shape, whatever made it and whatever
    DEBUG says: an unknown path or a malformed id (Django's 404, its technical page with DEBUG
    on), a method a plain view lacks, an error a DRF view rendered in another format (the
    schema's). The browsable API's HTML, which a browser asks for, stays."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        if (
            response.status_code < 400
            or not request.path_info.startswith("/api/")
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        if isinstance(response, Response) and isinstance(response.data, dict):
            if getattr(response.accepted_renderer, "format", "") == "api":
                return response  # the browsable API, for a browser
            body = response.data if "error" in response.data else None
        else:
            body = None
        return self.as_json(response, body)

    @staticmethod
    def as_json(response: HttpResponse, body: dict | None) -> JsonResponse:
        status_code = response.status_code
        if body is None:
            code, message = DJANGO_ERRORS.get(
                status_code, DJANGO_ERRORS[500 if status_code >= 500 else 400]
            )
            body = error_body(code, message)
        answer = JsonResponse(body, status=status_code)
        for header in KEPT_HEADERS:
            if header in response:
                answer[header] = response[header]
        return answer


def exception_handler(exc, context):
    """Render every known error as `{"error": {code, message, fields}}`; the rest are 500s."""
    if isinstance(exc, BimRideError):
        set_rollback()
        return Response(error_body(exc.code, exc.message, exc.fields), status=exc.status)
    if isinstance(exc, RequestDataTooBig):
        exc = exceptions.ParseError("The request body is too large.", code="too_large")
    if isinstance(exc, RecursionError) and "JSON" in str(exc):
        # json refuses deep nesting ("[[[[...") with a RecursionError; DRF only maps ValueError
        exc = exceptions.ParseError("The JSON document is nested too deeply.")
    response = drf_exception_handler(exc, context)
    if response is None:
        return None
    if isinstance(exc, exceptions.ValidationError):
        fields = exc.detail if isinstance(exc.detail, dict) else {"non_field_errors": exc.detail}
        response.data = error_body("invalid", "Invalid input.", fields)
    else:
        code = exc.get_codes() if isinstance(exc.get_codes(), str) else exc.default_code
        response.data = error_body(code, str(exc.detail))
    return response


class IdConverter:
    """`<id:ride_id>`: an object id in a path, 1 to 18 digits (inside PostgreSQL's bigint). Any
    other text (`abc`, `null,null`, `-1`, a number past the column) matches no route: 404."""

    regex = "[0-9]{1,18}"

    def to_python(self, value: str) -> int:
        return int(value)

    def to_url(self, value: int) -> str:
        return str(value)


def query_int(request, name: str, *, default: int, maximum: int) -> int:
    """The query parameter `name` as an integer from 1 to `maximum`, else a 400 naming it."""
    raw = request.query_params.get(name)
    if raw is None:
        return default
    if not re.fullmatch(r"[0-9]{1,9}", raw) or not 1 <= int(raw) <= maximum:
        message = f"Must be a whole number from 1 to {maximum}."
        raise ValidationError("Invalid query parameter.", fields={name: [message]})
    return int(raw)


def query_choice(request, name: str, *, choices: list[str], default: str) -> str:
    """The query parameter `name`, one of `choices`, else a 400 naming it."""
    raw = request.query_params.get(name, default)
    if raw not in choices:
        message = "Must be one of: " + ", ".join(choices) + "."
        raise ValidationError("Invalid query parameter.", fields={name: [message]})
    return raw


class Pagination(PageNumberPagination):
    """`?page=` (from 1) and `?page_size=` (1 to 100), each refused with a 400 when out of range;
    a page past the last answers 404."""

    page_size_query_param = "page_size"
    max_page_size = 100
    max_page = 1_000_000

    def get_page_size(self, request) -> int:
        return query_int(
            request, self.page_size_query_param, default=self.page_size, maximum=self.max_page_size
        )

    def get_page_number(self, request, paginator) -> int:
        return query_int(request, self.page_query_param, default=1, maximum=self.max_page)

    def get_schema_operation_parameters(self, view) -> list[dict]:
        bounds = {"page": self.max_page, "page_size": self.max_page_size}
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            maximum = bounds[parameter["name"]]
            parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": maximum}
            parameter["description"] += f" From 1 to {maximum}; anything else answers 400."
        return parameters


def _fingerprint(request) -> str:
    """A keyed hash of the request: bodies may hold passwords, so no plain digest is stored."""
    digest = hmac.new(settings.SECRET_KEY.encode(), digestmod=hashlib.sha256)
    digest.update(f"{request.method} {request.path}\n".encode())
    digest.update(json.dumps(request.data, sort_keys=True, default=str).encode())
    return digest.hexdigest()


def idempotent(view_method):
    """Make a creating POST replay its first response for a repeated `Idempotency-Key`.

    The view runs in one transaction with the claim of its key, an insert that a racing
    duplicate waits on, so of two racing requests one creates and the other replays. Error
    responses roll the claim back, so a corrected request can reuse the key.
    """

    @functools.wraps(view_method)
    def wrapper(self, request, *args, **kwargs):
        key = request.headers.get(IDEMPOTENCY_HEADER)
        if key is None:
            return view_method(self, request, *args, **kwargs)
        if not 1 <= len(key) <= 255 or not key.isprintable():
            raise ValidationError(
                "Idempotency-Key must be 1 to 255 printable characters.",
                code="invalid_idempotency_key",
            )
        with transaction.atomic():
            return _once(view_method, self, request, key, *args, **kwargs)

    wrapper.idempotent = True  # the schema documents its header and answers (bimride.schema)
    return wrapper


def _once(view_method, view, request, key: str, *args, **kwargs):
    """The first response of the request with this user and key: made now, or replayed."""
    user_id = request.user.pk if request.user.is_authenticated else None
    fingerprint = _fingerprint(request)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {IdempotentRequest._meta.db_table} (user_id, key, fingerprint,"
            " created_at) VALUES (%s, %s, %s, now()) ON CONFLICT DO NOTHING RETURNING id",
            [user_id, key, fingerprint],
        )
        claimed = cursor.fetchone()
    if claimed is None:
        first = IdempotentRequest.objects.get(user_id=user_id, key=key)
        if first.fingerprint != fingerprint:
            raise Conflict(
                "This Idempotency-Key was used for a different request.",
                code="idempotency_key_reused",
            )
        return Response(
            first.body, status=first.status_code, headers={"Idempotent-Replayed": "true"}
        )
    response = view_method(view, request, *args, **kwargs)
    claim = IdempotentRequest.objects.filter(pk=claimed[0])
    if status.is_success(response.status_code):
        body = json.loads(JSONRenderer().render(response.data) or b"null")
        claim.update(status_code=response.status_code, body=body)
    else:  # only successes are replayed; a corrected request may reuse the key
        claim.delete()
    return response
