"""Email jobs on `default` with the email retry policy, subscribed to the events that call for
an email. Each is `atomic=False`: the notification log commits on its own, so a message the
provider accepted stays recorded even if the job's attempt is later lost, and is not sent again.

What a person waits for goes first: among `default`'s due jobs, receipts and payment-failure
notices (priority 10) are taken before cancellations and refunds (5), other jobs (0) and
welcome emails (-10), so a burst of sign-ups never holds a receipt back.

A notification's key names the email ("receipt:42"); a resend carries its own key in the
payload (`notification_key`). `on_dead` marks the notification failed when retries run out.
"""

from collections.abc import Callable

from django.conf import settings
from rest_framework import serializers

from bimride.jobs import EMAIL_RETRY, PUSH_RETRY, JobContext, job, schedule
from notifications import pushes, services
from notifications.models import Kind
from payments.events import PaymentFailed, PaymentSettled, RefundSucceeded
from rides.events import (
    AccountRegistered,
    RideAccepted,
    RideCancelled,
    RideCompleted,
    RideDriverArriving,
    RideOffered,
    RideStarted,
)

EMAIL_TIMEOUT = 30  # seconds; above ANYMAIL REQUESTS_TIMEOUT, so a slow provider is a retry
PUSH_TIMEOUT = 30  # seconds; above FCM_TIMEOUT, so a slow FCM is a retry


class Resendable(serializers.Serializer):
    """An email's payload: its event's, or a resend's, which names the notification."""

    notification_key = serializers.CharField(max_length=200, required=False)  # set by resends


class WelcomePayload(Resendable, AccountRegistered.schema):
    pass


class ReceiptPayload(Resendable, PaymentSettled.schema):
    corrected = serializers.BooleanField(required=False, default=False)  # a corrected receipt


class RideCancelledPayload(Resendable, RideCancelled.schema):
    pass


class PaymentFailedPayload(Resendable, PaymentFailed.schema):
    pass


class RefundPayload(Resendable, RefundSucceeded.schema):
    pass


def key_of(prefix: str, field: str) -> Callable[[dict], str]:
    """The notification key of a payload: its own (a resend's) or "<prefix>:<payload[field]>"."""
    return lambda payload: payload.get("notification_key") or f"{prefix}:{payload[field]}"


def _origin(payload: dict, ctx: JobContext, key: Callable[[dict], str]) -> services.Origin:
    return services.Origin(key=key(payload), job_name=ctx.name, payload=payload, job_id=ctx.job_id)


def _mark_failed(key: Callable[[dict], str]) -> Callable[[dict, str], None]:
    def on_dead(payload: dict, error: str) -> None:
        services.notification_fail(key=key(payload), error=error)

    return on_dead


WELCOME_KEY = key_of("welcome", "user_id")
RECEIPT_KEY = key_of("receipt", "ride_id")
RIDE_CANCELLED_KEY = key_of("ride_cancelled", "ride_id")
PAYMENT_FAILED_KEY = key_of("payment_failed", "payment_id")
REFUND_KEY = key_of("refund_confirmation", "refund_id")


@job(
    "notifications.send_welcome",
    payload=WelcomePayload,
    retry=EMAIL_RETRY,
    timeout=EMAIL_TIMEOUT,
    on=AccountRegistered,
    subject="user",
    atomic=False,
    priority=-10,
    on_dead=_mark_failed(WELCOME_KEY),
)
def send_welcome(payload: dict, ctx: JobContext) -> dict:
    """Welcome a new rider or driver, once."""
    origin = _origin(payload, ctx, WELCOME_KEY)
    return services.welcome_send(user_id=payload["user_id"], origin=origin)


@job(
    "notifications.send_receipt",
    payload=ReceiptPayload,
    retry=EMAIL_RETRY,
    timeout=EMAIL_TIMEOUT,
    on=PaymentSettled,
    subject="ride",
    atomic=False,
    priority=10,
    on_dead=_mark_failed(RECEIPT_KEY),
)
def send_receipt(payload: dict, ctx: JobContext) -> dict:
    """Email the rider the receipt of a completed ride once its charge is settled (it says what
    the card was charged), once; its receipt status follows."""
    origin = _origin(payload, ctx, RECEIPT_KEY)
    return services.receipt_send(
        ride_id=payload["ride_id"], origin=origin, corrected=payload.get("corrected", False)
    )


@job(
    "notifications.send_ride_cancelled",
    payload=RideCancelledPayload,
    retry=EMAIL_RETRY,
    timeout=EMAIL_TIMEOUT,
    on=RideCancelled,
    subject="ride",
    atomic=False,
    priority=5,
    on_dead=_mark_failed(RIDE_CANCELLED_KEY),
)
def send_ride_cancelled(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider their ride was cancelled by the driver or expired (not when they
    cancelled it themselves)."""
    origin = _origin(payload, ctx, RIDE_CANCELLED_KEY)
    return services.ride_cancelled_send(
        ride_id=payload["ride_id"], cancelled_by=payload["cancelled_by"], origin=origin
    )


@job(
    "notifications.send_payment_failed",
    payload=PaymentFailedPayload,
    retry=EMAIL_RETRY,
    timeout=EMAIL_TIMEOUT,
    on=PaymentFailed,
    subject="ride",
    atomic=False,
    priority=10,
    on_dead=_mark_failed(PAYMENT_FAILED_KEY),
)
def send_payment_failed(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider a payment failed, once per payment (published by payments)."""
    origin = _origin(payload, ctx, PAYMENT_FAILED_KEY)
    return services.payment_failed_send(
        ride_id=payload["ride_id"],
        amount=payload["amount"],
        currency=payload["currency"],
        reason=payload.get("reason", ""),
        origin=origin,
    )


@job(
    "notifications.send_refund_confirmation",
    payload=RefundPayload,
    retry=EMAIL_RETRY,
    timeout=EMAIL_TIMEOUT,
    on=RefundSucceeded,
    subject="ride",
    atomic=False,
    priority=5,
    on_dead=_mark_failed(REFUND_KEY),
)
def send_refund_confirmation(payload: dict, ctx: JobContext) -> dict:
    """Confirm a refund to the rider, once per refund (published by payments)."""
    origin = _origin(payload, ctx, REFUND_KEY)
    return services.refund_confirmation_send(
        ride_id=payload["ride_id"],
        refund_id=payload["refund_id"],
        amount=payload["amount"],
        currency=payload["currency"],
        origin=origin,
    )


# --- pushes -------------------------------------------------------------------------------------
# One subscriber per event writes the pushes and enqueues one `send_push` job per device, in its
# own transaction (keyed per event and device); each push then retries and dead-letters alone.
class PushPayload(serializers.Serializer):
    push_id = serializers.IntegerField(min_value=1)


@job("notifications.push_driver_assigned", on=RideAccepted, subject="ride")
def push_driver_assigned(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider who is coming: the driver's name, car and ETA."""
    return _pushed(pushes.push_ride_event(kind=Kind.DRIVER_ASSIGNED, ride_id=payload["ride_id"]))


@job("notifications.push_driver_arriving", on=RideDriverArriving, subject="ride")
def push_driver_arriving(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider the driver is close to the pickup."""
    return _pushed(pushes.push_ride_event(kind=Kind.DRIVER_ARRIVING, ride_id=payload["ride_id"]))


@job("notifications.push_ride_started", on=RideStarted, subject="ride")
def push_ride_started(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider the ride has started."""
    return _pushed(pushes.push_ride_event(kind=Kind.RIDE_STARTED, ride_id=payload["ride_id"]))


@job("notifications.push_ride_completed", on=RideCompleted, subject="ride")
def push_ride_completed(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider the ride is over, with its total."""
    return _pushed(pushes.push_ride_event(kind=Kind.RIDE_COMPLETED, ride_id=payload["ride_id"]))


@job("notifications.push_payment_failed", on=PaymentFailed, subject="ride")
def push_payment_failed(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider a payment failed, once per payment."""
    return _money_push(Kind.PAYMENT_FAILED, payload, ref=payload["payment_id"])


@job("notifications.push_refund_issued", on=RefundSucceeded, subject="ride")
def push_refund_issued(payload: dict, ctx: JobContext) -> dict:
    """Tell the rider a refund is on its way, once per refund."""
    return _money_push(Kind.REFUND_ISSUED, payload, ref=payload["refund_id"])


def _money_push(kind: str, payload: dict, *, ref: int) -> dict:
    amount, currency = payload["amount"], payload["currency"]
    return _pushed(
        pushes.push_money_event(
            kind=kind, ride_id=payload["ride_id"], ref=ref, amount=amount, currency=currency
        )
    )


@job("notifications.push_ride_offer", on=RideOffered, subject="ride")
def push_ride_offer(payload: dict, ctx: JobContext) -> dict:
    """Tell a driver a ride near them is offered to them."""
    return _pushed(
        pushes.push_ride_offer(ride_id=payload["ride_id"], driver_id=payload["driver_id"])
    )


@job("notifications.push_ride_cancelled", on=RideCancelled, subject="ride")
def push_ride_cancelled(payload: dict, ctx: JobContext) -> dict:
    """Tell the driver their rider cancelled (a driver who cancelled knows already)."""
    if payload["cancelled_by"] != "rider":
        return {"skipped": f"cancelled by {payload['cancelled_by']}: the driver is not told"}
    return _pushed(pushes.push_ride_event(kind=Kind.RIDE_CANCELLED, ride_id=payload["ride_id"]))


def _pushed(written: list) -> dict:
    return {"pushes": [push.pk for push in written]}


def _mark_push_failed(payload: dict, error: str) -> None:
    pushes.push_fail(push_id=payload["push_id"], error=error)


@job(
    "notifications.send_push",
    payload=PushPayload,
    retry=PUSH_RETRY,
    timeout=PUSH_TIMEOUT,
    atomic=False,
    on_dead=_mark_push_failed,
)
def send_push(payload: dict, ctx: JobContext) -> dict:
    """Send one push to one device through FCM, once, while it is still true."""
    return pushes.push_send(push_id=payload["push_id"], job_id=ctx.job_id, trace_id=ctx.trace_id)


@job("notifications.prune_devices", queue="bulk", timeout=300, atomic=False)
def prune_devices(payload: dict, ctx: JobContext) -> dict:
    """Delete devices not registered again for PUSH_DEVICE_MAX_IDLE_DAYS days."""
    return {"deleted": pushes.device_prune(idle_days=settings.PUSH_DEVICE_MAX_IDLE_DAYS)}


schedule("notifications.prune_devices", "45 3 * * *")  # daily 03:45
