"""Payment jobs on `critical`, subscribed to the ride events.

STUBS: the Stripe flows (authorise, capture, release, fees, refunds, webhooks, payouts) are not
built yet. These handlers declare the subscriptions, queue and retry policy the real ones will
have, and do nothing but report that they are stubs.
"""

from rest_framework import serializers

from bimride.jobs.registry import JobContext, job
from bimride.jobs.retry import PAYMENTS_RETRY


class RidePayload(serializers.Serializer):
    ride_id = serializers.IntegerField(min_value=1)


@job(
    "payments.authorize_payment",
    queue="critical",
    payload=RidePayload,
    retry=PAYMENTS_RETRY,
    timeout=30,
    on="ride.requested",
    subject="ride",
)
def authorize_payment_stub(payload: dict, ctx: JobContext) -> dict:
    """STUB: will authorise the estimated fare on the rider's card."""
    return {"stub": True}


@job(
    "payments.capture_payment",
    queue="critical",
    payload=RidePayload,
    retry=PAYMENTS_RETRY,
    timeout=30,
    on="ride.completed",
    subject="ride",
)
def capture_payment_stub(payload: dict, ctx: JobContext) -> dict:
    """STUB: will capture the final fare with the job's idempotency key."""
    return {"stub": True}


@job(
    "payments.release_authorization",
    queue="critical",
    payload=RidePayload,
    retry=PAYMENTS_RETRY,
    timeout=30,
    on="ride.cancelled",
    subject="ride",
)
def release_authorization_stub(payload: dict, ctx: JobContext) -> dict:
    """STUB: will release the authorisation, or charge the cancellation fee when due."""
    return {"stub": True}
