"""SendGrid's event webhook (through anymail) behind basic auth, updating the log."""

import base64
import json
import time

import pytest
from django.test import Client

from bimride.jobs.testing import perform_job
from notifications.models import Notification, Suppression
from rides.models import Ride

URL = "/webhooks/anymail/sendgrid/tracking/"
SECRET = "sendgrid:s3cret-webhook-password"


@pytest.fixture(autouse=True)
def _webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def sent_receipt(ride) -> Notification:
    """The receipt of `ride`, accepted by the provider."""
    perform_job("notifications.send_receipt", {"ride_id": ride.pk})
    return Notification.objects.get(key=f"receipt:{ride.pk}")


def event(notification: Notification, kind: str, **fields) -> dict:
    return {
        "email": notification.recipient,
        "timestamp": int(time.time()),
        "event": kind,
        "anymail_id": notification.message_id,
        "sg_event_id": f"evt-{kind}-{notification.pk}",
        "sg_message_id": "sg.1",
        **fields,
    }


def post(events: list[dict], auth: str | None = SECRET):
    headers = {}
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    return Client().post(URL, json.dumps(events), content_type="application/json", **headers)


def receipt_status(notification: Notification) -> str:
    return Ride.objects.values_list("receipt_status", flat=True).get(pk=notification.ride_id)


@pytest.mark.django_db
@pytest.mark.parametrize("auth", [None, "sendgrid:wrong", "someone:s3cret-webhook-password"])
def test_events_without_the_right_basic_auth_are_refused_and_change_nothing(sent_receipt, auth):
    response = post([event(sent_receipt, "delivered")], auth=auth)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert response.json()["error"]["code"] == "not_authenticated"
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "sent"


@pytest.mark.django_db
def test_the_webhook_is_closed_while_no_secret_is_configured(settings, sent_receipt):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": ""}
    assert post([event(sent_receipt, "delivered")]).status_code == 403
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "sent"


@pytest.mark.django_db
def test_delivery_marks_the_notification_and_the_ride_receipt_delivered(sent_receipt):
    response = post([event(sent_receipt, "processed"), event(sent_receipt, "delivered")])
    assert response.status_code == 200
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "delivered" and sent_receipt.delivered_at
    assert sent_receipt.last_event == "delivered"
    assert receipt_status(sent_receipt) == "delivered"


@pytest.mark.django_db
def test_a_hard_bounce_suppresses_the_address_and_marks_the_receipt_bounced(sent_receipt):
    reason = "550 5.1.1 The email account that you tried to reach does not exist."
    response = post([event(sent_receipt, "bounce", type="bounce", reason=reason, status="5.1.1")])
    assert response.status_code == 200
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "bounced" and sent_receipt.error == reason
    assert receipt_status(sent_receipt) == "bounced"
    suppression = Suppression.objects.get(email=sent_receipt.recipient.lower())
    assert suppression.reason == "bounced" and suppression.notification == sent_receipt


@pytest.mark.django_db
def test_a_blocked_bounce_is_logged_but_does_not_suppress_the_address(sent_receipt):
    post([event(sent_receipt, "bounce", type="blocked", reason="421 try again later")])
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "bounced" and not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_complaint_suppresses_the_address(sent_receipt):
    post([event(sent_receipt, "delivered"), event(sent_receipt, "spamreport")])
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "complained"
    assert receipt_status(sent_receipt) == "delivered"  # it did arrive
    assert Suppression.objects.get().reason == "complained"


@pytest.mark.django_db
def test_a_late_delivered_event_does_not_undo_a_bounce(sent_receipt):
    post([event(sent_receipt, "bounce", type="bounce", reason="550 no such user")])
    post([event(sent_receipt, "delivered"), event(sent_receipt, "open")])
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "bounced" and sent_receipt.last_event == "opened"
    assert receipt_status(sent_receipt) == "bounced"


@pytest.mark.django_db
def test_a_drop_marks_the_notification_failed(sent_receipt):
    post([event(sent_receipt, "dropped", reason="Invalid")])
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "failed" and receipt_status(sent_receipt) == "failed"
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_events_for_unknown_messages_are_acknowledged_and_ignored(sent_receipt):
    unknown = event(sent_receipt, "bounce", anymail_id="not-one-of-ours", type="bounce")
    no_id = {k: v for k, v in event(sent_receipt, "delivered").items() if k != "anymail_id"}
    response = post([unknown, no_id])
    assert response.status_code == 200
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "sent" and not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_later_send_to_a_bounced_address_is_skipped(sent_receipt, ride):
    post([event(sent_receipt, "bounce", type="bounce", reason="550 no such user")])
    result = perform_job("notifications.send_welcome", {"user_id": ride.rider.user_id})
    assert result["skipped"].endswith("is suppressed (bounced)")
    assert Notification.objects.get(key=f"welcome:{ride.rider.user_id}").status == "suppressed"
