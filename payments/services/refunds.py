"""Refunds: requested by staff (API, admin), made at Stripe by a job, once per refund."""

from django.db import transaction
from django.db.models import Sum
from django.utils import timezone

from bimride.errors import Conflict, NotFound, ValidationError
from bimride.jobs import enqueue, publish
from payments import stripe_client
from payments.events import RefundSucceeded
from payments.models import (
    Payment,
    PaymentEvent,
    Refund,
)
from payments.services.state import S, payment_locked, payment_record_refunded


# --- refunds ------------------------------------------------------------------------------------
def payment_refundable(payment: Payment) -> int:
    """What is left to refund: captured, less refunded and refunds under way."""
    pending = payment.refunds.filter(status=Refund.Status.PENDING).aggregate(n=Sum("amount"))["n"]
    return payment.amount_captured - payment.amount_refunded - (pending or 0)


@transaction.atomic
def refund_request(*, payment_id: int, amount: int | None, reason: str, user) -> Refund:
    """Refund a captured payment fully (`amount` None) or partly; the refund runs as a job."""
    payment = Payment.objects.select_for_update().filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    if payment.status not in (S.CAPTURED, S.PARTIALLY_REFUNDED, S.DISPUTED):
        raise Conflict(f"A {payment.status} payment cannot be refunded.", code="not_refundable")
    refundable = payment_refundable(payment)
    amount = refundable if amount is None else amount
    if not 1 <= amount <= refundable:
        message = f"The amount must be between 1 and {refundable} (minor units)."
        raise ValidationError(message, fields={"amount": [message]})
    refund = Refund.objects.create(
        payment=payment, amount=amount, currency=payment.currency, reason=reason, requested_by=user
    )
    PaymentEvent.objects.create(
        payment=payment,
        old=payment.status,
        new=payment.status,
        source=f"user:{user.pk}" if user else "system",
        note=f"refund {refund.pk} of {amount} requested",
    )
    enqueue(
        "payments.refund_payment",
        {"refund_id": refund.pk, "ride_id": payment.ride_id},
        idempotency_key=f"refund:{refund.pk}",
    )
    return refund


def refund_run(*, refund_id: int, source: str) -> Refund:
    """Make a requested refund at Stripe, once; the rider is told when it succeeded."""
    refund = Refund.objects.select_related("payment").get(pk=refund_id)
    if refund.status != Refund.Status.PENDING:
        return refund
    answer = stripe_client.refund_create(
        intent_id=refund.payment.stripe_payment_intent_id,
        amount=refund.amount,
        key=f"refund:{refund.pk}",
    )
    with transaction.atomic():
        payment = payment_locked(refund.payment_id)
        refund = Refund.objects.select_for_update().get(pk=refund_id)
        if refund.status != Refund.Status.PENDING:
            return refund
        refund.status, refund.finished_at = Refund.Status.SUCCEEDED, timezone.now()
        refund.stripe_refund_id = answer["id"]
        refund.save()
        done = payment.refunds.filter(status=Refund.Status.SUCCEEDED).aggregate(n=Sum("amount"))
        payment_record_refunded(payment, max(payment.amount_refunded, done["n"] or 0), source)
        publish(
            RefundSucceeded(
                ride_id=payment.ride_id,
                refund_id=refund.pk,
                amount=refund.amount,
                currency=refund.currency,
            )
        )
    return refund


@transaction.atomic
def refund_fail(*, refund_id: int, error: str) -> None:
    """Mark a refund failed (its job is dead)."""
    Refund.objects.filter(pk=refund_id, status=Refund.Status.PENDING).update(
        status=Refund.Status.FAILED, failure_message=error[:500], finished_at=timezone.now()
    )
