"""Liveness and readiness probes for the load balancer and the orchestrator, and the answer
every request gets while the database is unreachable."""

import logging

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError, connection, transaction
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


@require_GET
@transaction.non_atomic_requests  # reports a database outage itself rather than failing to begin
def readyz(request):
    """Ready when the database answers and no queue lags past READY_MAX_LAG_SECONDS."""
    checks = {}
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        checks["database"] = "ok"
    except DatabaseError:
        connection.close()
        return JsonResponse({"status": "unavailable", "checks": {"database": "down"}}, status=503)
    from bimride.jobs.selectors import queue_lags

    lagging = {q: lag for q, lag in queue_lags().items() if lag > settings.READY_MAX_LAG_SECONDS}
    checks["queues"] = {"lagging": lagging} if lagging else "ok"
    status = 503 if lagging else 200
    return JsonResponse(
        {"status": "ok" if status == 200 else "lagging", "checks": checks}, status=status
    )
