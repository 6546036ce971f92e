"""Payment states: forward-only moves with an audit trail, kept in step with the ride."""

from django.db import transaction
from django.utils import timezone

from bimride.jobs import publish
from payments.events import PaymentFailed, PaymentSettled
from payments.models import Payment, PaymentEvent
from rides import services as ride_services
from rides.models import Ride

S = Payment.Status
RANK = {
    S.PENDING: 0,
    S.AUTHORIZED: 1,
    S.RELEASED: 2,
    S.FAILED: 2,
    S.CAPTURED: 3,
    S.PARTIALLY_REFUNDED: 4,
    S.REFUNDED: 5,
    S.DISPUTED: 6,
}
RIDE_STATUS = {  # the ride's payment_status for its fee payment's states
    S.CAPTURED: "fee_charged",
    S.FAILED: "fee_failed",
}


# --- state and audit ----------------------------------------------------------------------------
def payment_advance(payment: Payment, new: str, *, source: str, note: str = "", **fields) -> bool:
    """Move a locked payment forward to `new` with `fields`; a move backwards is refused and
    recorded. Returns whether it moved. Keeps the ride's payment status in step."""
    old = payment.status
    if RANK[new] < RANK[old] or (RANK[new] == RANK[old] and new != old):
        PaymentEvent.objects.create(
            payment=payment, old=old, new=new, source=source, note=f"ignored (out of order) {note}"
        )
        return False
    for name, value in fields.items():
        setattr(payment, name, value)
    payment.status, payment.updated_at = new, timezone.now()
    payment.save()
    PaymentEvent.objects.create(payment=payment, old=old, new=new, source=source, note=note)
    _sync_ride(payment, note if new in (S.FAILED, S.DISPUTED) else "", moved=old != new)
    return True


RELEASES_REST = (S.RELEASED, S.CAPTURED, S.PARTIALLY_REFUNDED, S.REFUNDED, S.DISPUTED)


def ride_charges(ride_id: int) -> dict:
    """What the ride's payments add up to (`rides.money.Charges` as a dict), with the ride row
    locked so that two payments of one ride moving at once each record the sum of both."""
    was = Ride.objects.select_for_update().values_list("charges", flat=True).get(pk=ride_id)
    charges = {"settled": bool(was.get("settled"))}
    for payment in Payment.objects.filter(ride_id=ride_id):
        if payment.kind == Payment.Kind.RIDE:
            authorized = payment.amount if payment.stripe_payment_intent_id else 0
            charges["authorized"] = authorized
            charges["captured"] = payment.amount_captured
            if payment.status in RELEASES_REST:
                charges["released"] = authorized - payment.amount_captured
        elif payment.kind == Payment.Kind.EXTRA:
            charges["extra"] = payment.amount_captured
        else:
            charges["cancellation_fee"] = payment.amount_captured
        charges["refunded"] = charges.get("refunded", 0) + payment.amount_refunded
    return charges


def _sync_ride(payment: Payment, flag: str, *, moved: bool) -> None:
    charges = ride_charges(payment.ride_id)
    if not moved:
        ride_services.ride_set_payment_status(ride_id=payment.ride_id, charges=charges)
        return
    if payment.kind == Payment.Kind.RIDE:
        status = payment.status
    elif payment.kind == Payment.Kind.CANCELLATION_FEE:
        status = RIDE_STATUS.get(payment.status, payment.status)
    else:  # an extra charge shows on the ride only when it fails or is disputed
        status = S.FAILED if payment.status == S.FAILED else ""
        status = S.DISPUTED if payment.status == S.DISPUTED else status
    note = f"payment {payment.pk} ({payment.kind}) {payment.status}: {flag}" if flag else ""
    ride_services.ride_set_payment_status(
        ride_id=payment.ride_id, status=status, charges=charges, note=note if status else ""
    )


@transaction.atomic
def payment_settle(*, ride_id: int) -> bool:
    """Record that the completed ride's total due has been taken and publish `payment.settled`
    (the receipt follows it), once: returns whether this call settled it."""
    charges = ride_charges(ride_id)
    if charges["settled"]:
        return False
    ride_services.ride_set_payment_status(ride_id=ride_id, charges=charges | {"settled": True})
    publish(PaymentSettled(ride_id=ride_id))
    return True


def payment_locked(payment_id: int) -> Payment:
    return Payment.objects.select_for_update().get(pk=payment_id)


@transaction.atomic
def payment_fail(*, payment_id: int, code: str, message: str, source: str) -> bool:
    """Mark a payment failed (once), flag its ride and tell the rider."""
    payment = payment_locked(payment_id)
    if payment.status != S.PENDING and payment.status != S.AUTHORIZED:
        return False
    payment_advance(
        payment,
        S.FAILED,
        source=source,
        note=code,
        failure_code=code[:100],
        failure_message=message[:500],
    )
    publish(
        PaymentFailed(
            ride_id=payment.ride_id,
            payment_id=payment.pk,
            amount=payment.amount,
            currency=payment.currency,
            reason=message[:300],
        )
    )
    return True


def payment_record_refunded(payment: Payment, refunded: int, source: str) -> None:
    """Record on a locked payment that `refunded` of it is refunded in all (never less)."""
    refunded = min(max(refunded, payment.amount_refunded), payment.amount_captured)
    new = S.REFUNDED if refunded >= payment.amount_captured else S.PARTIALLY_REFUNDED
    if payment.status == S.DISPUTED:
        new = S.DISPUTED
    payment_advance(
        payment, new, source=source, note=f"refunded {refunded}", amount_refunded=refunded
    )


def payment_note_once(payment: Payment, note: str, source: str) -> None:
    if not payment.events.filter(note=note).exists():
        PaymentEvent.objects.create(
            payment=payment, old=payment.status, new=payment.status, source=source, note=note
        )
