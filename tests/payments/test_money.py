"""One money truth: the breakdown of `rides.money` adds up, Stripe is asked for exactly what it
says, and the receipt, the refund email, the API and the admin say the same numbers. Property
tests over promo kind and value × estimate × final fare × refunds."""

import re
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bimride.jobs.testing import perform_job
from notifications import emails
from payments import services
from payments.models import Payment, Refund
from rides import money
from rides.models import PromoCode, PromoRedemption, Ride
from rides.services import fare_for, ride_money
from tests.conftest import client_for
from tests.payments.conftest import ride_in

PROMOS = st.one_of(
    st.none(),
    st.builds(lambda v: money.Promo("PCT", "percent", v), st.integers(1, 100)),
    st.builds(lambda v: money.Promo("FIX", "fixed", v), st.integers(1, 5000)),
)


def cents(text: str) -> int:
    """ "-$1,234.56" -> -123456: what an email says, back in minor units."""
    digits = re.sub(r"[^0-9]", "", text)
    return -int(digits) if text.startswith("-") else int(digits)


# --- the pure rules -----------------------------------------------------------------------------
@given(promo=PROMOS, estimate=st.integers(0, 50_000), final=st.integers(0, 100_000))
def test_the_plan_takes_exactly_the_total_due_and_never_a_negative_amount(promo, estimate, final):
    held = money.authorization_amount(estimate, promo)
    due = final - money.discount_on(final, promo)
    plan = money.capture_plan(due, held)
    assert 0 <= held <= estimate and 0 <= due <= final
    assert held == 0 or held >= money.MIN_CHARGE
    assert plan.capture + plan.extra + plan.waived == due
    assert 0 <= plan.capture <= held
    assert plan.extra == 0 or plan.extra >= money.MIN_CHARGE
    assert 0 <= plan.waived < money.MIN_CHARGE


@given(amount=st.integers(0, 100_000), percent=st.integers(1, 100))
def test_a_percent_discount_rounds_down_to_the_minor_unit(amount, percent):
    discount = money.discount_on(amount, money.Promo("P", "percent", percent))
    assert discount == (Decimal(amount) * percent / 100).to_integral_value(rounding="ROUND_FLOOR")


# --- every reader against the stand-in ----------------------------------------------------------
def stripe_took(standin, ride: Ride) -> tuple[int, int]:
    """What the stand-in moved for the ride: received in all, refunded in all."""
    intents = standin.intents_of(ride_id=ride.pk)
    received = sum(pi.get("amount_received", 0) for pi in intents)
    ids = {pi["id"] for pi in intents}
    refunded = sum(r["amount"] for r in standin.refunds.values() if r["payment_intent"] in ids)
    return received, refunded


def ride_with(promo: money.Promo | None, estimate: int) -> Ride:
    ride = ride_in("requested", estimated_fare=estimate)
    if promo is not None:
        code = PromoCode.objects.create(
            code=f"{promo.code}{ride.pk}", kind=promo.kind, value=promo.value
        )
        PromoRedemption.objects.create(promo=code, ride=ride, rider=ride.rider)
    return ride


def complete(ride: Ride, driver, km: Decimal, minutes: int) -> Ride:
    fare = fare_for(distance=km, minutes=minutes)
    Ride.objects.filter(pk=ride.pk).update(
        status="completed", driver=driver, distance_km=km, duration_min=minutes, fare_amount=fare
    )
    return Ride.objects.get(pk=ride.pk)


@pytest.mark.django_db
@settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    promo=PROMOS,
    estimate=st.integers(50, 20_000),
    km=st.decimals(0, 60, places=2),
    minutes=st.integers(0, 120),
    refunds=st.lists(st.integers(1, 100), max_size=3),
)
def test_stripe_the_receipt_the_refund_email_and_the_api_agree_with_the_breakdown(
    stripe_standin, driver, promo, estimate, km, minutes, refunds
):
    ride = ride_with(promo, estimate)
    perform_job("payments.authorize_payment", {"ride_id": ride.pk})
    ride = complete(ride, driver, km, minutes)
    perform_job("payments.capture_payment", {"ride_id": ride.pk})

    breakdown = ride_money(Ride.objects.get(pk=ride.pk))
    plan = money.capture_plan(breakdown.total_due, breakdown.authorized)
    assert breakdown.settled and breakdown.captured == plan.capture
    assert breakdown.extra_charged == plan.extra and breakdown.waived == plan.waived
    assert breakdown.captured + breakdown.released == breakdown.authorized
    assert stripe_took(stripe_standin, ride) == (breakdown.charged, 0)

    email = emails.receipt(ride_id=ride.pk)
    lines = email.context["lines"]
    at = next(i for i, line in enumerate(lines) if line.get("rule"))  # the "Fare" line
    parts, fare = [cents(line["amount"]) for line in lines[:at]], cents(lines[at]["amount"])
    taken_off = [cents(line["amount"]) for line in lines[at + 1 :]]
    assert parts == [amount for _, amount in breakdown.fare_lines] and sum(parts) == fare
    assert email.amount == breakdown.charged == cents(email.context["total"])
    assert fare + sum(taken_off) == breakdown.charged >= 0  # the lines add up to the total
    assert (email.context["card_last4"] is None) == (breakdown.charged == 0)
    assert email.context["covered_by_promo"] == (breakdown.total_due == 0 and promo is not None)

    for percent in refunds:
        payment = Payment.objects.filter(ride=ride, amount_captured__gt=0).first()
        left = payment and services.payment_refundable(payment)
        if not left:
            break
        refund = services.refund_request(
            payment_id=payment.pk, amount=max(1, left * percent // 100), reason="", user=None
        )
        perform_job("payments.refund_payment", {"refund_id": refund.pk})
        after = ride_money(Ride.objects.get(pk=ride.pk))
        told = emails.refund_confirmation(
            ride_id=ride.pk, refund_id=refund.pk, amount=refund.amount, currency="usd"
        ).context
        assert cents(told["refunded"]) == after.refunded
        assert cents(told["net_paid"]) == after.net_paid == after.charged - after.refunded

    final = ride_money(Ride.objects.get(pk=ride.pk))
    done = Refund.objects.filter(payment__ride=ride, status="succeeded")
    assert final.refunded == sum(done.values_list("amount", flat=True))
    assert stripe_took(stripe_standin, ride) == (final.charged, final.refunded)
    body = client_for(ride.rider.user).get(f"/api/rides/{ride.pk}").json()
    assert body["money"] == final.as_dict()
