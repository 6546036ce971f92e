"""Authorise, capture, release and charge: each reads and locks, calls Stripe outside any
transaction with a key derived from the payment, then records the answer."""

from django.conf import settings
from django.db import IntegrityError, transaction

from bimride.errors import PermanentError
from bimride.jobs import Snooze, enqueue
from payments import stripe_client
from payments.models import (
    Payment,
    PaymentEvent,
    StripeCustomer,
)
from payments.services.state import (
    RANK,
    S,
    payment_advance,
    payment_fail,
    payment_locked,
    payment_note_once,
    payment_settle,
)
from payments.stripe_client import PaymentError
from rides import money
from rides import services as ride_services
from rides.models import Ride, Rider


class AuthorizationPending(Snooze):  # noqa: N818 - a snooze
    """The authorisation is still being made: again in a moment, using no attempt."""

    def __init__(self, ride_id: int):
        super().__init__(2, f"the authorisation of ride {ride_id} is not made yet")


class NothingToCapture(PermanentError):
    code = "nothing_to_capture"


def _stripe(payment: Payment, call, source: str, **kwargs) -> dict:
    """Make a Stripe call for `payment`; a permanent refusal marks the payment failed first."""
    try:
        result = call(**kwargs)
    except PaymentError as error:
        payment_fail(
            payment_id=payment.pk, code=error.code, message=error.stripe_message, source=source
        )
        raise
    return result


def _intent(ride: Ride, payment: Payment, source: str, *, manual_capture: bool, key: str) -> dict:
    """A PaymentIntent for `payment` on the rider's saved card: authorised or charged at once."""
    customer = customer_for(rider=ride.rider)
    return _stripe(
        payment,
        stripe_client.intent_create,
        source,
        amount=payment.amount,
        currency=payment.currency,
        customer=customer.customer_id,
        payment_method=customer.payment_method_id,
        manual_capture=manual_capture,
        metadata={"ride_id": ride.pk, "payment_id": payment.pk, "kind": payment.kind},
        key=key,
    )


# --- customers ----------------------------------------------------------------------------------
def customer_for(*, rider: Rider) -> StripeCustomer:
    """The rider's Stripe customer with a saved test payment method, created once."""
    existing = StripeCustomer.objects.filter(rider=rider).first()
    if existing is not None:
        return existing
    user = rider.user
    customer = stripe_client.customer_create(
        rider_id=rider.pk, email=user.email, name=rider.name, key=f"customer:{rider.pk}"
    )
    method = stripe_client.payment_method_attach(
        payment_method=settings.STRIPE_TEST_PAYMENT_METHOD,
        customer=customer["id"],
        key=f"attach:{rider.pk}",
    )
    try:
        with transaction.atomic():
            return StripeCustomer.objects.create(
                rider=rider,
                customer_id=customer["id"],
                payment_method_id=method["id"],
                card_last4=(method.get("card") or {}).get("last4", ""),
            )
    except IntegrityError:  # a racing job saved it first (same key: the same customer)
        return StripeCustomer.objects.get(rider=rider)


# --- authorise ----------------------------------------------------------------------------------
def payment_authorize(*, ride_id: int, source: str) -> Payment:
    """Authorise the ride's estimated fare (less its promo) on the rider's saved card, once."""
    with transaction.atomic():
        ride = Ride.objects.select_for_update().select_related("rider__user").get(pk=ride_id)
        promo = ride_services.promo_of(ride)
        amount = money.authorization_amount(ride.estimated_fare, promo)
        payment, _ = Payment.objects.get_or_create(
            ride=ride,
            kind=Payment.Kind.RIDE,
            defaults={
                "rider": ride.rider,
                "amount": max(amount, 1),
                "discount": money.discount_on(ride.estimated_fare, promo),
                "currency": ride.currency,
            },
        )
        if payment.status != S.PENDING:
            return payment
        if ride.status == Ride.Status.CANCELLED or amount == 0:
            payment_advance(payment, S.RELEASED, source=source, note="nothing to authorise")
            return payment
    intent = _intent(ride, payment, source, manual_capture=True, key=f"authorize:{payment.pk}")
    with transaction.atomic():
        payment = payment_locked(payment.pk)
        if payment.status == S.PENDING:
            payment_advance(
                payment,
                S.AUTHORIZED,
                source=source,
                note=intent["id"],
                stripe_payment_intent_id=intent["id"],
            )
    return payment


# --- capture ------------------------------------------------------------------------------------
def payment_capture(*, ride_id: int, source: str) -> Payment:
    """Take a completed ride's total due (`rides.money`): capture it from the authorisation (the
    rest released), charge an excess on top or waive a small one, then settle the ride, which
    sends the receipt. Safe to run again: Stripe sees the same keys."""
    with transaction.atomic():
        ride = Ride.objects.select_related("promo__promo").get(pk=ride_id)
        if ride.status != Ride.Status.COMPLETED:
            raise NothingToCapture(f"Ride {ride_id} is {ride.status}, not completed.")
        payment = Payment.objects.select_for_update().filter(ride=ride, kind="ride").first()
        if payment is None or payment.status == S.PENDING:
            raise AuthorizationPending(ride_id)
        due = ride_services.ride_money(ride).total_due
        authorized = payment.amount if payment.stripe_payment_intent_id else 0
        plan = money.capture_plan(due, authorized)
        if (
            payment.status not in (S.AUTHORIZED, S.RELEASED)
            and RANK[payment.status] < RANK[S.CAPTURED]
        ):
            raise NothingToCapture(f"Payment {payment.pk} is {payment.status}: nothing to capture.")
    if payment.status == S.AUTHORIZED:
        if plan.capture > 0:
            intent = _stripe(
                payment,
                stripe_client.intent_capture,
                source,
                intent_id=payment.stripe_payment_intent_id,
                amount=plan.capture,
                key=f"capture:{payment.pk}",
            )
            new, captured = S.CAPTURED, intent["amount_received"]
        else:  # the promo covers the whole fare
            stripe_client.intent_cancel(
                intent_id=payment.stripe_payment_intent_id, key=f"release:{payment.pk}"
            )
            new, captured = S.RELEASED, 0
        with transaction.atomic():
            payment = payment_locked(payment.pk)
            if payment.status == S.AUTHORIZED:
                payment_advance(payment, new, source=source, amount_captured=captured)
    if plan.extra:
        _charge(ride, Payment.Kind.EXTRA, plan.extra, source, key_prefix="charge")
    elif plan.waived:
        payment_note_once(
            payment, f"excess of {plan.waived} below the minimum charge: waived", source
        )
    payment_settle(ride_id=ride.pk)
    return payment


def _charge(ride: Ride, kind: str, amount: int, source: str, *, key_prefix: str) -> Payment:
    """Charge `amount` at once (no authorisation) on the rider's saved card, once per kind."""
    with transaction.atomic():
        payment, _ = Payment.objects.get_or_create(
            ride=ride,
            kind=kind,
            defaults={"rider": ride.rider, "amount": amount, "currency": ride.currency},
        )
        if payment.status != S.PENDING:
            return payment
    intent = _intent(ride, payment, source, manual_capture=False, key=f"{key_prefix}:{payment.pk}")
    with transaction.atomic():
        payment = payment_locked(payment.pk)
        if payment.status == S.PENDING:
            payment_advance(
                payment,
                S.CAPTURED,
                source=source,
                note=intent["id"],
                stripe_payment_intent_id=intent["id"],
                amount_captured=intent["amount_received"],
            )
    return payment


# --- release and cancellation fee ---------------------------------------------------------------
def payment_release(
    *, ride_id: int, cancelled_by: str, after_accept_seconds: int | None, source: str
) -> Payment | None:
    """Release the authorisation of a cancelled ride; a rider who cancels longer than the grace
    period after a driver accepted is charged the cancellation fee by a deferred job."""
    with transaction.atomic():
        ride = Ride.objects.select_related("rider").get(pk=ride_id)
        payment, created = Payment.objects.select_for_update().get_or_create(
            ride=ride,
            kind=Payment.Kind.RIDE,
            defaults={
                "rider": ride.rider,
                "amount": max(ride.estimated_fare, 1),
                "currency": ride.currency,
                "status": S.RELEASED,  # cancelled before the authorisation job ran: none made
            },
        )
        if created:
            PaymentEvent.objects.create(
                payment=payment, new=S.RELEASED, source=source, note="cancelled before authorised"
            )
            ride_services.ride_set_payment_status(ride_id=ride.pk, status=S.RELEASED)
        if (
            cancelled_by == "rider"
            and after_accept_seconds is not None
            and after_accept_seconds > settings.CANCELLATION_GRACE_SECONDS
            and settings.CANCELLATION_FEE > 0
        ):
            enqueue(
                "payments.charge_cancellation_fee",
                {"ride_id": ride.pk},
                delay=settings.CANCELLATION_FEE_DELAY,
                idempotency_key=f"cancel_fee:{ride.pk}",
            )
        if payment.status == S.PENDING:
            raise AuthorizationPending(ride_id)
    if payment.status == S.AUTHORIZED:
        stripe_client.intent_cancel(
            intent_id=payment.stripe_payment_intent_id, key=f"release:{payment.pk}"
        )
        with transaction.atomic():
            payment = payment_locked(payment.pk)
            if payment.status == S.AUTHORIZED:
                payment_advance(payment, S.RELEASED, source=source)
    return payment


def cancellation_fee_charge(*, ride_id: int, source: str) -> Payment | None:
    """Charge the cancellation fee of a ride, unless the ride was completed after all."""
    ride = Ride.objects.select_related("rider").get(pk=ride_id)
    if ride.status != Ride.Status.CANCELLED:
        return None
    return _charge(
        ride,
        Payment.Kind.CANCELLATION_FEE,
        settings.CANCELLATION_FEE,
        source,
        key_prefix="cancel_fee",
    )
