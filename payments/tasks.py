"""Payment jobs on `critical` with the payments retry policy, subscribed to the ride events.

The Stripe jobs are `atomic=False`: a service reads and locks, calls Stripe outside any
transaction with a key derived from the payment (`capture:<payment id>`), then records the
answer in its own transaction. A worker killed after Stripe answered leaves the job running; it
is delivered again, makes the same call with the same key, gets Stripe's stored answer and
records it: one capture. A declined card or a rejected request is permanent (the payment is
marked failed, the ride flagged, the rider told, the job dead-lettered with Stripe's code);
network errors and 5xx are retried, and `on_dead` fails the payment when retries run out; a
rate limit snoozes the job. The jobs acting on one ride (authorise, capture with its extra
charge, release, cancellation fee, refunds) share the concurrency key `ride:<id>`: they run one
at a time in the order they were enqueued, so a capture never runs before its authorisation.
"""

from django.db import transaction
from rest_framework import serializers

from bimride.jobs import PAYMENTS_RETRY, JobContext, enqueue, job, schedule
from payments import services
from payments.models import Payment
from rides.events import RideCancelled, RideCompleted, RideRequested

PAYMENT_TIMEOUT = 30  # seconds; above STRIPE_TIMEOUT, so a hung Stripe call is a retry


class RidePayload(serializers.Serializer):
    ride_id = serializers.IntegerField(min_value=1)


class RefundPayload(serializers.Serializer):
    refund_id = serializers.IntegerField(min_value=1)
    ride_id = serializers.IntegerField(min_value=1, required=False)  # its concurrency key


class WebhookPayload(serializers.Serializer):
    webhook_event_id = serializers.IntegerField(min_value=1)


class PayoutBatchPayload(serializers.Serializer):
    week = serializers.RegexField(r"^\d{4}-W\d{2}$", required=False)


class PayoutPayload(serializers.Serializer):
    driver_id = serializers.IntegerField(min_value=1)
    week = serializers.RegexField(r"^\d{4}-W\d{2}$")


def _fail_ride_payment(kind: str):
    """on_dead: the ride's payment of `kind` failed for good (retries ran out)."""

    def on_dead(payload: dict, error: str) -> None:
        payment = Payment.objects.filter(ride_id=payload["ride_id"], kind=kind).first()
        if payment is not None:
            services.payment_fail(
                payment_id=payment.pk, code="retries_exhausted", message=error, source="dead"
            )

    return on_dead


def _source(ctx: JobContext) -> str:
    return f"job:{ctx.name}#{ctx.job_id}"


@job(
    "payments.authorize_payment",
    queue="critical",
    retry=PAYMENTS_RETRY,
    timeout=PAYMENT_TIMEOUT,
    on=RideRequested,
    subject="ride",
    atomic=False,
    concurrency_key="ride:{ride_id}",  # one ride's payment jobs run one at a time, in order
    on_dead=_fail_ride_payment(Payment.Kind.RIDE),
)
def authorize_payment(payload: dict, ctx: JobContext) -> dict:
    """Authorise the estimated fare (less the promo) on the rider's card, once."""
    payment = services.payment_authorize(ride_id=payload["ride_id"], source=_source(ctx))
    return {"payment_id": payment.pk, "status": payment.status, "amount": payment.amount}


@job(
    "payments.capture_payment",
    queue="critical",
    retry=PAYMENTS_RETRY,
    timeout=PAYMENT_TIMEOUT,
    on=RideCompleted,
    subject="ride",
    atomic=False,
    concurrency_key="ride:{ride_id}",  # one ride's payment jobs run one at a time, in order
    on_dead=_fail_ride_payment(Payment.Kind.RIDE),
)
def capture_payment(payload: dict, ctx: JobContext) -> dict:
    """Capture the final fare; safe to run twice: Stripe sees the same key."""
    payment = services.payment_capture(ride_id=payload["ride_id"], source=_source(ctx))
    return {"payment_id": payment.pk, "status": payment.status}


@job(
    "payments.release_authorization",
    queue="critical",
    retry=PAYMENTS_RETRY,
    timeout=PAYMENT_TIMEOUT,
    on=RideCancelled,
    subject="ride",
    atomic=False,
    concurrency_key="ride:{ride_id}",  # one ride's payment jobs run one at a time, in order
)
def release_authorization(payload: dict, ctx: JobContext) -> dict:
    """Release the authorisation of a cancelled ride; schedule the cancellation fee if due."""
    payment = services.payment_release(
        ride_id=payload["ride_id"],
        cancelled_by=payload["cancelled_by"],
        after_accept_seconds=payload.get("after_accept_seconds"),
        source=_source(ctx),
    )
    return {"payment_id": payment.pk if payment else None, "status": payment and payment.status}


@job(
    "payments.charge_cancellation_fee",
    queue="critical",
    payload=RidePayload,
    retry=PAYMENTS_RETRY,
    timeout=PAYMENT_TIMEOUT,
    subject="ride",
    atomic=False,
    concurrency_key="ride:{ride_id}",  # one ride's payment jobs run one at a time, in order
    on_dead=_fail_ride_payment(Payment.Kind.CANCELLATION_FEE),
)
def charge_cancellation_fee(payload: dict, ctx: JobContext) -> dict:
    """Charge the cancellation fee (deferred), skipped if the ride was completed after all."""
    payment = services.cancellation_fee_charge(ride_id=payload["ride_id"], source=_source(ctx))
    if payment is None:
        return {"skipped": True}
    return {"payment_id": payment.pk, "status": payment.status, "amount": payment.amount}


def _refund_failed(payload: dict, error: str) -> None:
    services.refund_fail(refund_id=payload["refund_id"], error=error)


@job(
    "payments.refund_payment",
    queue="critical",
    payload=RefundPayload,
    retry=PAYMENTS_RETRY,
    timeout=PAYMENT_TIMEOUT,
    atomic=False,
    concurrency_key="ride:{ride_id}",  # one ride's payment jobs run one at a time, in order
    on_dead=_refund_failed,
)
def refund_payment(payload: dict, ctx: JobContext) -> dict:
    """Refund (part of) a payment at Stripe, once: the key is the refund's."""
    refund = services.refund_run(refund_id=payload["refund_id"], source=_source(ctx))
    return {"refund_id": refund.pk, "status": refund.status}


@job(
    "payments.process_stripe_event",
    queue="critical",
    payload=WebhookPayload,
    retry=PAYMENTS_RETRY,
    timeout=PAYMENT_TIMEOUT,
)
def process_stripe_event(payload: dict, ctx: JobContext) -> dict:
    """Apply a verified Stripe webhook event to its payment (once per event id)."""
    return {"outcome": services.webhook_process(webhook_event_id=payload["webhook_event_id"])}


PAYOUT_CHUNK = 500


# The batch is a fan-out on `bulk` (where batch jobs run); the payouts themselves are on
# `critical`.
@job(
    "payments.run_weekly_payouts",
    queue="bulk",
    payload=PayoutBatchPayload,
    retry=PAYMENTS_RETRY,
    timeout=300,
    atomic=False,
)
def run_weekly_payouts(payload: dict, ctx: JobContext) -> dict:
    """Enqueue one incentive job per driver with completed rides last ISO week. Idempotent per
    driver and week (`payout:<driver>:<week>`): running it twice pays nobody twice."""
    week = payload.get("week") or (ctx.progress or {}).get("week") or services.payout_week_of()
    cursor = (ctx.progress or {}).get("cursor", 0)
    done = (ctx.progress or {}).get("done", 0)
    while True:
        with transaction.atomic():
            drivers = services.payout_drivers(week=week, after_id=cursor, chunk=PAYOUT_CHUNK)
            if not drivers:
                break
            for driver_id in drivers:
                enqueue(
                    pay_driver_incentive.name,
                    {"driver_id": driver_id, "week": week},
                    idempotency_key=f"payout:{driver_id}:{week}",
                )
            cursor, done = drivers[-1], done + len(drivers)
            ctx.report(week=week, cursor=cursor, done=done)
    return {"week": week, "drivers": done}


def _payout_failed(payload: dict, error: str) -> None:
    services.payout_fail(driver_id=payload["driver_id"], week=payload["week"], error=error)


@job(
    "payments.pay_driver_incentive",
    queue="critical",
    payload=PayoutPayload,
    retry=PAYMENTS_RETRY,
    timeout=PAYMENT_TIMEOUT,
    atomic=False,
    on_dead=_payout_failed,
)
def pay_driver_incentive(payload: dict, ctx: JobContext) -> dict:
    """Transfer one driver's incentive for one ISO week to their connected account, once."""
    payout = services.payout_pay(driver_id=payload["driver_id"], week=payload["week"])
    if payout is None:
        return {"payout_id": None, "amount": 0}
    return {"payout_id": payout.pk, "amount": payout.amount, "transfer": payout.stripe_transfer_id}


schedule("payments.run_weekly_payouts", "0 2 * * 1")  # Mondays 02:00
