"""Email jobs on `default` with the email retry policy."""

from rest_framework import serializers

from bimride.jobs.registry import JobContext, job
from bimride.jobs.retry import EMAIL_RETRY
from notifications import services


class UserPayload(serializers.Serializer):
    user_id = serializers.IntegerField(min_value=1)


class RidePayload(serializers.Serializer):
    ride_id = serializers.IntegerField(min_value=1)


@job(
    "notifications.send_welcome",
    payload=UserPayload,
    retry=EMAIL_RETRY,
    timeout=30,
    on="account.registered",
    subject="user",
)
def send_welcome(payload: dict, ctx: JobContext) -> dict:
    """Welcome a new rider or driver."""
    services.welcome_send(user_id=payload["user_id"])
    return {"sent": True}


@job(
    "notifications.send_receipt",
    payload=RidePayload,
    retry=EMAIL_RETRY,
    timeout=30,
    on="ride.completed",
    subject="ride",
)
def send_receipt(payload: dict, ctx: JobContext) -> dict:
    """Email the rider the receipt of a completed ride."""
    return {"receipt_status": services.receipt_send(ride_id=payload["ride_id"])}
