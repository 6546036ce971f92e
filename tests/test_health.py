"""While the database is unreachable, requests get a JSON 503, never a 500 or a traceback."""

import json

from django.db import InterfaceError, OperationalError
from django.test import RequestFactory

from bimride.health import DatabaseUnavailableMiddleware


def _middleware():
    return DatabaseUnavailableMiddleware(lambda request: None)


def test_a_database_outage_answers_503_unavailable_in_the_error_shape():
    request = RequestFactory().get("/api/rides")
    for error in (OperationalError("connection refused"), InterfaceError("connection closed")):
        response = _middleware().process_exception(request, error)
        assert response.status_code == 503
        assert response["Retry-After"] == "5"
        assert json.loads(response.content)["error"]["code"] == "unavailable"


def test_other_exceptions_are_left_to_the_500_handler():
    request = RequestFactory().get("/api/rides")
    assert _middleware().process_exception(request, ValueError("boom")) is None
