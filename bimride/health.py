"""Liveness and readiness probes for the load balancer and the orchestrator."""

from django.conf import settings
from django.db import DatabaseError, connection
from django.http import JsonResponse
from django.views.decorators.http import require_GET


@require_GET
def healthz(request):
    """The process is alive (no dependencies checked)."""
    return JsonResponse({"status": "ok"})


@require_GET
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
