"""Request and response examples of the job status and dead-letter endpoints for /api/schema/."""

from drf_spectacular.utils import OpenApiExample

JOB = {
    "id": 52,
    "uid": "3f6c1a0e-8d5b-4f3e-9a57-2c1d0b7e4a19",
    "name": "payments.capture_payment",
    "queue": "critical",
    "priority": 0,
    "state": "succeeded",
    "attempts": 1,
    "max_attempts": 8,
    "idempotency_key": "",
    "trace_id": "9f2c4e1ab7d04c55",
    "created_at": "2026-12-02T09:21:00Z",
    "run_at": "2026-12-02T09:21:00Z",
    "started_at": "2026-12-02T09:21:00.004Z",
    "finished_at": "2026-12-02T09:21:00.180Z",
    "next_attempt_at": None,
    "result": {"status": "captured"},
    "last_error": "",
    "progress": {},
}
JOB_STATUS = [
    OpenApiExample("Succeeded", value=JOB, response_only=True),
    OpenApiExample(
        "Retrying after a failed attempt",
        value={
            **JOB,
            "state": "retrying",
            "finished_at": None,
            "next_attempt_at": "2026-12-02T09:21:12Z",
            "result": None,
            "last_error": "APIConnectionError: Stripe did not answer",
        },
        response_only=True,
    ),
]
DEAD_LETTER = {
    "id": 7,
    "job": {"id": 60, "name": "notifications.send_receipt", "state": "dead"},
    "name": "notifications.send_receipt",
    "queue": "default",
    "payload": {"ride_id": 17},
    "error_class": "notifications.errors.AddressRejected",
    "error_message": "The provider rejected the recipient address.",
    "attempts": 1,
    "history": [{"attempt": 1, "error": "AddressRejected", "at": "2026-12-02T09:21:01Z"}],
    "created_at": "2026-12-02T09:21:01Z",
    "resolution": "",
    "resolved_at": None,
    "resolved_by": None,
    "note": "",
    "retry_job": None,
}
RETRY = [
    OpenApiExample("Retry as it was", value={"note": "Provider back up."}, request_only=True),
    OpenApiExample(
        "Retry with an edited payload",
        value={"payload": {"ride_id": 18}, "note": "Wrong ride id in the original."},
        request_only=True,
    ),
    OpenApiExample(
        "The new job",
        value={
            **JOB,
            "id": 61,
            "name": "notifications.send_receipt",
            "queue": "default",
            "state": "queued",
            "attempts": 0,
            "max_attempts": 5,
            "started_at": None,
            "finished_at": None,
            "result": None,
        },
        response_only=True,
        status_codes=["201"],
    ),
]
DISCARD = [
    OpenApiExample("A note", value={"note": "Ride refunded by hand."}, request_only=True),
    OpenApiExample(
        "Discarded",
        value={
            **DEAD_LETTER,
            "resolution": "discarded",
            "resolved_at": "2026-12-02T10:00:00Z",
            "resolved_by": "ops@bimride.example",
            "note": "Ride refunded by hand.",
        },
        response_only=True,
    ),
]
DEAD_LETTERS = [OpenApiExample("An open dead letter", value=DEAD_LETTER, response_only=True)]
