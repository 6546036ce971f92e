"""The payment flows, handler by handler, against the Stripe stand-in."""

from datetime import timedelta

import pytest

from bimride.jobs.models import Job
from bimride.jobs.testing import perform_job
from payments import services
from payments.models import Payment, StripeCustomer
from payments.stripe_client import PaymentDeclined
from rides.models import RideEvent
from tests.factories import DriverFactory
from tests.payments.conftest import jobs_named, payment_of, ride_in

pytestmark = pytest.mark.django_db


def completed(ride, fare: int):
    ride.status, ride.fare_amount, ride.driver = "completed", fare, DriverFactory()
    ride.save()


def authorized(ride):
    perform_job("payments.authorize_payment", {"ride_id": ride.pk})
    return payment_of(ride)


def test_authorising_holds_the_estimated_fare_on_the_riders_saved_card(stripe_standin):
    ride = ride_in("requested")
    payment = authorized(ride)
    assert payment.status == "authorized" and payment.amount == 1500
    [intent] = stripe_standin.intents_of(ride_id=ride.pk)
    assert intent["capture_method"] == "manual" and intent["status"] == "requires_capture"
    assert intent["amount"] == 1500 and intent["id"] == payment.stripe_payment_intent_id
    customer = StripeCustomer.objects.get(rider=ride.rider)
    assert customer.customer_id.startswith("cus_") and customer.payment_method_id.startswith("pm_")
    ride.refresh_from_db()
    assert ride.payment_status == "authorized"
    assert list(payment.events.values_list("old", "new")) == [("pending", "authorized")]


def test_authorising_twice_makes_one_authorisation(stripe_standin):
    ride = ride_in("requested")
    authorized(ride)
    payment = authorized(ride)
    assert payment.status == "authorized" and len(stripe_standin.intents) == 1


def test_a_lower_final_fare_captures_less_than_authorised(stripe_standin):
    ride = ride_in("requested")
    authorized(ride)
    completed(ride, 1174)
    perform_job("payments.capture_payment", {"ride_id": ride.pk})
    payment = payment_of(ride)
    assert payment.status == "captured" and payment.amount_captured == 1174
    assert stripe_standin.captures(payment.stripe_payment_intent_id) == 1
    assert payment_of(ride, "extra") is None


def test_a_higher_final_fare_captures_all_and_charges_the_excess(stripe_standin):
    ride = ride_in("requested")
    authorized(ride)
    completed(ride, 2100)
    perform_job("payments.capture_payment", {"ride_id": ride.pk})
    perform_job("payments.capture_payment", {"ride_id": ride.pk})  # a re-run charges nothing again
    assert payment_of(ride).amount_captured == 1500
    extra = payment_of(ride, "extra")
    assert extra.status == "captured" and extra.amount == extra.amount_captured == 600
    assert stripe_standin.captures() == 1 and stripe_standin.charges == 2


def test_capturing_before_the_authorisation_is_made_is_retried(stripe_standin):
    ride = ride_in("completed")
    with pytest.raises(services.AuthorizationPending):
        perform_job("payments.capture_payment", {"ride_id": ride.pk})


def test_cancelling_releases_the_authorisation(stripe_standin):
    ride = ride_in("requested")
    payment = authorized(ride)
    ride.status = "cancelled"
    ride.save()
    perform_job("payments.release_authorization", {"ride_id": ride.pk, "cancelled_by": "rider"})
    payment.refresh_from_db()
    assert payment.status == "released"
    assert stripe_standin.intents[payment.stripe_payment_intent_id]["status"] == "canceled"
    assert not jobs_named("payments.charge_cancellation_fee").exists()


def test_a_ride_cancelled_before_authorisation_is_never_authorised(stripe_standin):
    ride = ride_in("cancelled")
    perform_job("payments.release_authorization", {"ride_id": ride.pk, "cancelled_by": "rider"})
    assert authorized(ride).status == "released"
    assert stripe_standin.intents == {}


def test_a_late_rider_cancellation_charges_the_fee_as_a_deferred_job(stripe_standin, settings):
    settings.CANCELLATION_FEE, settings.CANCELLATION_GRACE_SECONDS = 500, 120
    ride = ride_in("requested")
    authorized(ride)
    ride.status = "cancelled"
    ride.save()
    payload = {"ride_id": ride.pk, "cancelled_by": "rider", "after_accept_seconds": 121}
    perform_job("payments.release_authorization", payload)
    [fee_job] = jobs_named("payments.charge_cancellation_fee")
    assert fee_job.run_at - fee_job.created_at >= settings.CANCELLATION_FEE_DELAY - timedelta(1)
    assert fee_job.idempotency_key == f"cancel_fee:{ride.pk}"
    perform_job("payments.charge_cancellation_fee", {"ride_id": ride.pk})
    fee = payment_of(ride, "cancellation_fee")
    assert fee.status == "captured" and fee.amount_captured == 500
    ride.refresh_from_db()
    assert ride.payment_status == "fee_charged"


@pytest.mark.parametrize(
    "cancelled_by, seconds", [("rider", 120), ("rider", None), ("driver", 600), ("system", None)]
)
def test_no_fee_within_the_grace_period_or_when_not_the_rider(
    stripe_standin, settings, cancelled_by, seconds
):
    settings.CANCELLATION_GRACE_SECONDS = 120
    ride = ride_in("cancelled")
    payload = {"ride_id": ride.pk, "cancelled_by": cancelled_by, "after_accept_seconds": seconds}
    perform_job("payments.release_authorization", payload)
    assert not jobs_named("payments.charge_cancellation_fee").exists()


def test_the_fee_is_skipped_if_the_ride_was_completed_after_all(stripe_standin):
    ride = ride_in("completed")
    result = perform_job("payments.charge_cancellation_fee", {"ride_id": ride.pk})
    assert result == {"skipped": True}
    assert stripe_standin.intents == {}


def test_a_declined_card_fails_the_payment_flags_the_ride_and_tells_the_rider(stripe_standin):
    ride = ride_in("requested")
    stripe_standin.fail_next("decline", path="payment_intents")
    with pytest.raises(PaymentDeclined) as caught:
        perform_job("payments.authorize_payment", {"ride_id": ride.pk})
    assert caught.value.code == "card_declined"
    payment = payment_of(ride)
    assert payment.status == "failed" and payment.failure_code == "card_declined"
    ride.refresh_from_db()
    assert ride.payment_status == "failed"
    assert RideEvent.objects.filter(ride=ride, note__contains="card_declined").exists()
    [told] = jobs_named("notifications.send_payment_failed")
    assert told.payload["payment_id"] == payment.pk and told.payload["currency"] == "usd"
    assert "4242" not in str(told.payload)


def test_payment_jobs_carry_ids_only(stripe_standin):
    ride = ride_in("requested")
    authorized(ride)
    for job in Job.objects.filter(name__startswith="payments."):
        assert set(job.payload) <= {"ride_id", "cancelled_by", "after_accept_seconds"}


def test_amounts_are_integer_minor_units_with_a_currency(stripe_standin):
    payment = authorized(ride_in("requested"))
    assert isinstance(payment.amount, int) and payment.currency == "usd"
    assert Payment.objects.filter(amount__gt=0).count() == 1


def test_an_excess_below_stripes_minimum_charge_is_waived(stripe_standin):
    ride = ride_in("requested")
    authorized(ride)
    completed(ride, 1530)
    perform_job("payments.capture_payment", {"ride_id": ride.pk})
    payment = payment_of(ride)
    assert payment.amount_captured == 1500 and payment_of(ride, "extra") is None
    assert payment.events.filter(note__contains="waived").count() == 1
