"""The liveness probe for the load balancer and the orchestrator, and the answer every request
gets while the database is unreachable. Readiness asks the queues: `bimride.jobs.ops.health`."""

import logging

from django.db import InterfaceError, OperationalError, connection, transaction
from django.http import JsonResponse
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


class DatabaseUnavailableMiddleware:
    """Answer 503 `unavailable` (JSON, Retry-After) when a view cannot reach the database,
    instead of a 500: clients and load balancers retry a 503, and no traceback is shown."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)

    def process_exception(self, request, exception):
        if not isinstance(exception, OperationalError | InterfaceError):
            return None
        logger.warning("database unavailable: %s %s: %s", request.method, request.path, exception)
        connection.close()  # a broken connection must not be reused by the next request
        from bimride.api import error_body

        response = JsonResponse(
            error_body("unavailable", "The service is briefly unavailable; try again shortly."),
            status=503,
        )
        response["Retry-After"] = "5"
        return response


@require_GET
@transaction.non_atomic_requests  # no database, so no transaction (ATOMIC_REQUESTS would open one)
def healthz(request):
    """The process is alive (no dependencies checked)."""
    return JsonResponse({"status": "ok"})
