"""The Stripe stand-in speaks Stripe: the SDK's objects, errors and idempotent replays."""

import sys
from contextlib import contextmanager

import pytest
import requests

from devtools.supervisor import Process, free_port, wait_http
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


@contextmanager
def standalone(settings, state_file):
    """`python -m devtools.stripe_standin --state state_file`, as `make run` starts it."""
    port = free_port()
    command = [sys.executable, "-m", "devtools.stripe_standin", "--port", str(port)]
    process = Process("stripe-standin", [*command, "--state", str(state_file)])
    try:
        settings.STRIPE_API_BASE = f"http://127.0.0.1:{port}"
        settings.STRIPE_TIMEOUT = 2.0
        wait_http(f"{settings.STRIPE_API_BASE}/_standin/state", 30, process=process)
        yield
    finally:
        assert process.stop(), "the stand-in did not stop on SIGTERM"


def authorise(key: str) -> dict:
    cus = customer()
    pm = stripe_client.payment_method_attach(
        payment_method="pm_card_visa", customer=cus["id"], key="pm:1"
    )
    return stripe_client.intent_create(
        amount=1000,
        currency="usd",
        customer=cus["id"],
        payment_method=pm["id"],
        manual_capture=True,
        metadata={"ride_id": 7},
        key=key,
    )


def test_with_a_state_file_payment_intents_outlive_a_restart(settings, tmp_path):
    state_file = tmp_path / "stripe-standin.json"
    with standalone(settings, state_file):
        intent = authorise("authorize:1")
        assert intent["status"] == "requires_capture"

    with standalone(settings, state_file):
        assert authorise("authorize:1") == intent  # the stored answer: nothing made twice
        captured = stripe_client.intent_capture(intent_id=intent["id"], amount=800, key="c:1")
        assert captured["status"] == "succeeded"
        state = requests.get(f"{settings.STRIPE_API_BASE}/_standin/state", timeout=5).json()
        assert state["customers"] == 1 and [i["id"] for i in state["intents"]] == [intent["id"]]


def test_without_a_state_file_each_stand_in_starts_empty(stripe_standin):
    assert stripe_standin.state_file is None and not stripe_standin.intents
