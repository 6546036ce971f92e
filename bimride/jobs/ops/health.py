"""Readiness for the load balancer and the orchestrator: the database answers and no queue lags
past READY_MAX_LAG_SECONDS (liveness and the database-outage answer are `bimride.health`'s)."""

from django.conf import settings
from django.db import DatabaseError, connection, transaction
from django.http import JsonResponse
from django.views.decorators.http import require_GET

from bimride.jobs.ops.selectors import queue_lags


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
    lagging = {q: lag for q, lag in queue_lags().items() if lag > settings.READY_MAX_LAG_SECONDS}
    checks["queues"] = {"lagging": lagging} if lagging else "ok"
    status = 503 if lagging else 200
    return JsonResponse(
        {"status": "ok" if status == 200 else "lagging", "checks": checks}, status=status
    )
