"""Request and response examples of the ride flow for /api/schema/ (the API docs show them)."""

from drf_spectacular.utils import OpenApiExample

BERLIN = {"pickup": {"lat": 52.52, "lng": 13.405}, "dropoff": {"lat": 52.5, "lng": 13.45}}
JOB = {"id": 41, "name": "payments.authorize_payment", "state": "succeeded"}


def ride(status: str, **extra) -> dict:
    """A ride as the API shows it, at `status`."""
    accepted = status != "requested"
    return {
        "id": 17,
        "status": status,
        "rider": {"id": 3, "name": "Ada Rider"},
        "driver": {"id": 5, "name": "Dan Driver"} if accepted else None,
        **BERLIN,
        "requested_at": "2026-12-02T09:00:00Z",
        "accepted_at": "2026-12-02T09:01:10Z" if accepted else None,
        "started_at": None,
        "completed_at": None,
        "cancelled_at": None,
        "distance_km": None,
        "duration_min": None,
        "estimated_fare": {"amount": 1030, "currency": "usd"},
        "fare": None,
        "payment_status": "authorized",
        "receipt_status": "none",
        "jobs": [JOB],
        **extra,
    }


COMPLETED = ride(
    "completed",
    started_at="2026-12-02T09:05:00Z",
    completed_at="2026-12-02T09:21:00Z",
    distance_km="4.30",
    duration_min=16,
    fare={"amount": 1246, "currency": "usd"},
    payment_status="captured",
    receipt_status="sent",
    jobs=[
        JOB,
        {"id": 52, "name": "payments.capture_payment", "state": "succeeded"},
        {"id": 53, "name": "notifications.send_receipt", "state": "succeeded"},
    ],
)

REQUEST = [
    OpenApiExample("A ride across Berlin", value=BERLIN, request_only=True),
    OpenApiExample(
        "With a promo code", value={**BERLIN, "promo_code": "WELCOME5"}, request_only=True
    ),
    OpenApiExample(
        "Requested: authorised, offered to drivers",
        value=ride("requested", payment_status="pending", jobs=[{**JOB, "state": "queued"}]),
        response_only=True,
        status_codes=["201"],
    ),
]
ACCEPTED = [OpenApiExample("Accepted", value=ride("accepted"), response_only=True)]
STARTED = [
    OpenApiExample(
        "Under way",
        value=ride("in_progress", started_at="2026-12-02T09:05:00Z"),
        response_only=True,
    )
]
COMPLETE = [
    OpenApiExample(
        "Distance and duration",
        value={"distance_km": "4.30", "duration_min": 16},
        request_only=True,
    ),
    OpenApiExample(
        "Completed: the capture and the receipt follow as jobs",
        value={**COMPLETED, "payment_status": "authorized", "receipt_status": "pending"},
        response_only=True,
    ),
]
DETAIL = [
    OpenApiExample("Completed, paid, receipt sent", value=COMPLETED, response_only=True),
    OpenApiExample("Waiting for a driver", value=ride("requested"), response_only=True),
]
CANCEL = [
    OpenApiExample("A reason", value={"reason": "Plans changed."}, request_only=True),
    OpenApiExample(
        "Cancelled",
        value=ride(
            "cancelled",
            driver=None,
            accepted_at=None,
            cancelled_at="2026-12-02T09:02:00Z",
            payment_status="canceled",
        ),
        response_only=True,
    ),
]
