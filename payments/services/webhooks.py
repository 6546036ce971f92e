"""Stripe webhooks: stored once per event id, applied once by a job, never backwards."""

from django.db import transaction
from django.utils import timezone

from bimride.jobs import enqueue
from payments import stripe_client
from payments.models import (
    Payment,
    WebhookEvent,
)
from payments.services.state import (
    S,
    payment_advance,
    payment_fail,
    payment_record_refunded,
)


# --- webhooks -----------------------------------------------------------------------------------
@transaction.atomic
def webhook_receive(*, payload: bytes, signature: str | None) -> WebhookEvent:
    """Store a signature-verified Stripe event once per event id and have a job process it
    (once: the job's key is the event id). Raises WebhookSignatureInvalid, storing nothing."""
    event = stripe_client.webhook_event(payload=payload, signature=signature)
    stored, _ = WebhookEvent.objects.get_or_create(
        event_id=event["id"], defaults={"type": str(event.get("type", "")), "payload": event}
    )
    enqueue(
        "payments.process_stripe_event",
        {"webhook_event_id": stored.pk},
        idempotency_key=f"webhook:{stored.event_id}",
    )
    return stored


@transaction.atomic
def webhook_process(*, webhook_event_id: int) -> str:
    """Apply a stored Stripe event to its payment, once; returns what it did."""
    event = WebhookEvent.objects.select_for_update().get(pk=webhook_event_id)
    if event.processed_at is not None:
        return event.outcome
    obj = (event.payload.get("data") or {}).get("object") or {}
    intent_id = (
        obj.get("id") if event.type.startswith("payment_intent.") else obj.get("payment_intent")
    )
    payment = (
        Payment.objects.select_for_update().filter(stripe_payment_intent_id=intent_id).first()
        if intent_id
        else None
    )
    source = f"webhook:{event.event_id}"
    if payment is None:
        outcome = "ignored: no payment for this event"
    elif event.type == "payment_intent.succeeded":
        captured = max(payment.amount_captured, int(obj.get("amount_received") or 0))
        moved = payment_advance(payment, S.CAPTURED, source=source, amount_captured=captured)
        outcome = "captured" if moved else "ignored: out of order"
    elif event.type == "payment_intent.payment_failed":
        error = obj.get("last_payment_error") or {}
        moved = payment_fail(
            payment_id=payment.pk,
            code=error.get("code") or "payment_failed",
            message=error.get("message") or "The payment failed.",
            source=source,
        )
        outcome = "failed" if moved else "ignored: out of order"
    elif event.type == "charge.refunded":
        payment_record_refunded(payment, int(obj.get("amount_refunded") or 0), source)
        outcome = f"refunded {payment.amount_refunded}"
    elif event.type == "charge.dispute.created":
        payment_advance(payment, S.DISPUTED, source=source, note=f"dispute {obj.get('id', '')}")
        outcome = "disputed"
    else:
        outcome = f"ignored: {event.type} is not handled"
    event.processed_at, event.outcome = timezone.now(), outcome[:200]
    event.save(update_fields=["processed_at", "outcome"])
    return event.outcome
