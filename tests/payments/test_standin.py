"""The Stripe stand-in speaks Stripe: the SDK's objects, errors and idempotent replays."""

import pytest
import requests

from payments import stripe_client
from payments.stripe_client import PaymentRejected

pytestmark = pytest.mark.django_db


def customer(key="customer:1"):
    return stripe_client.customer_create(rider_id=1, email="r@example.com", name="R", key=key)


def test_a_repeated_key_replays_the_first_answer(stripe_standin):
    first, again = customer(), customer()
    assert first == again and len(stripe_standin.customers) == 1 and stripe_standin.replays == 1


def test_a_key_reused_with_other_parameters_is_refused(stripe_standin):
    customer()
    with pytest.raises(PaymentRejected) as caught:
        stripe_client.customer_create(rider_id=2, email="x@example.com", name="X", key="customer:1")
    assert "same parameters" in str(caught.value)


def test_a_wrong_api_key_is_refused(stripe_standin, settings):
    settings.STRIPE_API_KEY = "nope"
    with pytest.raises(PaymentRejected):
        customer()


def test_the_control_api_injects_failures_and_shows_state(stripe_standin):
    base = stripe_standin.api_base
    answer = requests.post(
        f"{base}/_standin/fail", json={"kind": "500", "path": "customers"}, timeout=5
    )
    assert answer.status_code == 200
    with pytest.raises(stripe_client.StripeUnavailable):
        customer()
    customer()  # the 500 was not stored under the key: the retry runs for real
    assert requests.get(f"{base}/_standin/state", timeout=5).json()["customers"] == 1
