"""`POST /webhooks/stripe`: verified, stored once per event id, processed once by a job."""

import json

import pytest
from django.core import checks

from bimride.jobs.engine.runner import run_job
from payments import stripe_client
from payments.models import PaymentEvent, WebhookEvent
from tests.payments.conftest import captured_payment_in, jobs_named

pytestmark = pytest.mark.django_db

URL = "/webhooks/stripe"


def event(event_id: str, kind: str, obj: dict) -> str:
    return json.dumps({"id": event_id, "object": "event", "type": kind, "data": {"object": obj}})


def post(client, body: str, signature: str | None = "sign"):
    headers = {}
    if signature == "sign":
        signature = stripe_client.webhook_signature(payload=body)
    if signature is not None:
        headers["HTTP_STRIPE_SIGNATURE"] = signature
    return client.post(URL, data=body, content_type="application/json", **headers)


def deliver(client, body: str) -> None:
    """Post an event and run the job it enqueued, as a worker would."""
    assert post(client, body).status_code == 200
    event_id = json.loads(body)["id"]
    job = jobs_named("payments.process_stripe_event").get(idempotency_key=f"webhook:{event_id}")
    run_job(job.pk)


@pytest.fixture
def captured_payment(db):
    return captured_payment_in("pi_test_1")


@pytest.mark.parametrize(
    "signature",
    [None, "", "t=1,v1=deadbeef", "garbage", "sign-with-another-secret", "stale"],
)
def test_a_bad_or_missing_signature_answers_401_and_stores_nothing(client, signature):
    body = event("evt_1", "payment_intent.succeeded", {"id": "pi_1"})
    if signature == "sign-with-another-secret":
        signature = stripe_client.webhook_signature(payload=body, secret="whsec_other")
    if signature == "stale":
        from stripe import WebhookSignature

        signature = WebhookSignature.generate_signature_header(
            body, "whsec_dev_standin_secret", timestamp=1
        )
    response = post(client, body, signature)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Stripe-Signature ")
    assert response.json()["error"]["code"] == "invalid_signature"
    assert not WebhookEvent.objects.exists() and not jobs_named("payments.process_stripe_event")


@pytest.mark.parametrize("signature", [None, "sign", "sign-with-an-empty-secret"])
def test_the_webhook_is_closed_while_no_secret_is_configured(client, settings, caplog, signature):
    body = event("evt_1", "payment_intent.succeeded", {"id": "pi_1"})
    if signature != "sign":  # signed with the configured secret before it is unset
        signature = signature and stripe_client.webhook_signature(payload=body, secret=" ")
    else:
        signature = stripe_client.webhook_signature(payload=body)
    settings.STRIPE_WEBHOOK_SECRET = ""
    response = post(client, body, signature)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Stripe-Signature ")
    assert response.json()["error"]["code"] == "webhook_closed"
    assert "closed because STRIPE_WEBHOOK_SECRET is not set" in caplog.text
    assert not WebhookEvent.objects.exists()


@pytest.mark.parametrize(
    ("secret", "warning"),
    [("", "payments.W001"), ("whsec_dev_standin_secret", "payments.W002"), ("whsec_live", None)],
)
def test_the_deployment_checks_say_why_the_webhook_refuses_or_is_weak(settings, secret, warning):
    settings.STRIPE_WEBHOOK_SECRET = secret
    found = [c.id for c in checks.run_checks(include_deployment_checks=True)]
    assert [i for i in found if i.startswith("payments.W")] == ([warning] if warning else [])


def test_a_resent_event_is_stored_and_processed_once(client, captured_payment):
    body = event(
        "evt_2", "charge.refunded", {"payment_intent": "pi_test_1", "amount_refunded": 174}
    )
    for _ in range(3):
        assert post(client, body).status_code == 200
    assert WebhookEvent.objects.count() == 1
    [job] = jobs_named("payments.process_stripe_event")
    run_job(job.pk)
    captured_payment.refresh_from_db()
    assert captured_payment.status == "partially_refunded"
    assert captured_payment.amount_refunded == 174
    assert WebhookEvent.objects.get().processed_at is not None


def test_payment_intent_succeeded_captures_an_authorised_payment(client, captured_payment):
    captured_payment.status, captured_payment.amount_captured = "authorized", 0
    captured_payment.save()
    deliver(
        client,
        event("evt_3", "payment_intent.succeeded", {"id": "pi_test_1", "amount_received": 1500}),
    )
    captured_payment.refresh_from_db()
    assert captured_payment.status == "captured" and captured_payment.amount_captured == 1500
    captured_payment.ride.refresh_from_db()
    assert captured_payment.ride.payment_status == "captured"


def test_an_out_of_order_failure_does_not_move_a_captured_payment_back(client, captured_payment):
    failed = {"id": "pi_test_1", "last_payment_error": {"code": "card_declined"}}
    deliver(client, event("evt_4", "payment_intent.payment_failed", failed))
    captured_payment.refresh_from_db()
    assert captured_payment.status == "captured"
    assert WebhookEvent.objects.get().outcome.startswith("ignored")


def test_a_smaller_refund_total_arriving_late_does_not_lower_the_refunded_amount(
    client, captured_payment
):
    deliver(
        client,
        event("evt_5", "charge.refunded", {"payment_intent": "pi_test_1", "amount_refunded": 1174}),
    )
    deliver(
        client,
        event("evt_6", "charge.refunded", {"payment_intent": "pi_test_1", "amount_refunded": 100}),
    )
    captured_payment.refresh_from_db()
    assert captured_payment.status == "refunded" and captured_payment.amount_refunded == 1174


def test_a_dispute_marks_the_payment_and_flags_the_ride(client, captured_payment):
    deliver(
        client,
        event("evt_7", "charge.dispute.created", {"id": "dp_1", "payment_intent": "pi_test_1"}),
    )
    captured_payment.refresh_from_db()
    assert captured_payment.status == "disputed"
    ride = captured_payment.ride
    ride.refresh_from_db()
    assert ride.payment_status == "disputed" and ride.events.filter(note__contains="disputed")
    # and a refund arriving after the dispute does not move it back
    deliver(
        client,
        event("evt_8", "charge.refunded", {"payment_intent": "pi_test_1", "amount_refunded": 1174}),
    )
    captured_payment.refresh_from_db()
    assert captured_payment.status == "disputed" and captured_payment.amount_refunded == 1174


def test_an_event_for_an_unknown_payment_is_recorded_and_ignored(client):
    deliver(client, event("evt_9", "payment_intent.succeeded", {"id": "pi_unknown"}))
    assert WebhookEvent.objects.get().outcome.startswith("ignored")
    assert not PaymentEvent.objects.exists()
