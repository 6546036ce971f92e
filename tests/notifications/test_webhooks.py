"""Each provider's tracking webhook (through anymail) behind basic auth, updating the log.

Every test runs for Postmark (the default) and for SendGrid: the receipt is sent through the
provider's real anymail backend to its stand-in, and the stand-in writes the tracking events
that provider would post, to that provider's own webhook URL.
"""

import base64

import pytest
from django.core import checks
from django.test import Client

from bimride.jobs.testing import perform_job
from notifications.models import Notification, Suppression
from rides.models import Ride

SECRET = "hooks:s3cret-webhook-password"


@pytest.fixture(autouse=True)
def _webhook_secret(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}


@pytest.fixture
def sent_receipt(ride, provider) -> Notification:
    """The receipt of `ride`, accepted by the provider."""
    perform_job("notifications.send_receipt", {"ride_id": ride.pk})
    return Notification.objects.get(key=f"receipt:{ride.pk}")


@pytest.fixture
def track(provider):
    """Post the provider's tracking events about a notification to its webhook; the last
    answer."""

    def post(notification, *kinds, auth: str | None = SECRET, **fields):
        events = [
            provider.tracking_event(notification.message_id, notification.recipient, kind, **fields)
            for kind in kinds
        ]
        return post_events(provider, events, auth=auth)

    return post


def post_events(provider, events: list[dict], auth: str | None = SECRET):
    headers = {}
    if auth is not None:
        headers["HTTP_AUTHORIZATION"] = "Basic " + base64.b64encode(auth.encode()).decode()
    url = f"/webhooks/anymail/{provider.provider}/tracking/"
    for body in provider.webhook_bodies(events):
        response = Client().post(url, body, content_type="application/json", **headers)
    return response


def receipt_status(notification: Notification) -> str:
    return Ride.objects.values_list("receipt_status", flat=True).get(pk=notification.ride_id)


@pytest.mark.django_db
@pytest.mark.parametrize("auth", [None, "hooks:wrong", "someone:s3cret-webhook-password"])
def test_events_without_the_right_basic_auth_are_refused_and_change_nothing(
    sent_receipt, track, auth
):
    response = track(sent_receipt, "delivered", auth=auth)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert response.json()["error"]["code"] == "not_authenticated"
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "sent"


@pytest.mark.django_db
@pytest.mark.parametrize("auth", [None, SECRET, "hooks:wrong"])
def test_the_webhook_is_closed_while_no_secret_is_configured(
    settings, sent_receipt, track, caplog, auth
):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": ""}
    response = track(sent_receipt, "delivered", auth=auth)
    assert response.status_code == 401
    assert response["WWW-Authenticate"].startswith("Basic ")
    assert response.json()["error"]["code"] == "webhook_closed"
    assert "closed because ANYMAIL_WEBHOOK_SECRET is not set" in caplog.text
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "sent"


def test_the_deployment_checks_say_why_the_webhook_is_closed(settings):
    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": ""}
    found = checks.run_checks(include_deployment_checks=True)
    [warning] = [c for c in found if c.id == "notifications.W001"]
    assert "ANYMAIL_WEBHOOK_SECRET is not set" in warning.msg and "401" in warning.msg

    settings.ANYMAIL = {**settings.ANYMAIL, "WEBHOOK_SECRET": SECRET}
    found = checks.run_checks(include_deployment_checks=True)
    assert not [c for c in found if c.id == "notifications.W001"]


@pytest.mark.django_db
def test_only_the_chosen_providers_webhook_is_open(settings, sent_receipt, provider):
    other = "sendgrid" if provider.provider == "postmark" else "postmark"
    auth = "Basic " + base64.b64encode(SECRET.encode()).decode()
    response = Client().post(
        f"/webhooks/anymail/{other}/tracking/", "{}", "application/json", HTTP_AUTHORIZATION=auth
    )
    assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"


@pytest.mark.django_db
def test_delivery_marks_the_notification_and_the_ride_receipt_delivered(sent_receipt, track):
    assert track(sent_receipt, "delivered").status_code == 200
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "delivered" and sent_receipt.delivered_at
    assert sent_receipt.last_event == "delivered"
    assert receipt_status(sent_receipt) == "delivered"


@pytest.mark.django_db
def test_an_open_is_logged_as_the_last_event(sent_receipt, track):
    track(sent_receipt, "delivered", "opened")
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "delivered" and sent_receipt.last_event == "opened"


@pytest.mark.django_db
def test_an_event_applied_again_changes_nothing(sent_receipt, provider):
    delivered = provider.tracking_event(
        sent_receipt.message_id, sent_receipt.recipient, "delivered"
    )
    opened = provider.tracking_event(sent_receipt.message_id, sent_receipt.recipient, "opened")
    post_events(provider, [delivered, opened])
    sent_receipt.refresh_from_db()
    before = (sent_receipt.status, sent_receipt.last_event, sent_receipt.delivered_at)

    assert post_events(provider, [delivered]).status_code == 200  # the provider's redelivery
    sent_receipt.refresh_from_db()
    assert (sent_receipt.status, sent_receipt.last_event, sent_receipt.delivered_at) == before


@pytest.mark.django_db
def test_a_hard_bounce_suppresses_the_address_and_marks_the_receipt_bounced(sent_receipt, track):
    reason = "550 5.1.1 The email account that you tried to reach does not exist."
    assert track(sent_receipt, "bounced", reason=reason).status_code == 200
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "bounced" and sent_receipt.error == reason
    assert receipt_status(sent_receipt) == "bounced"
    suppression = Suppression.objects.get(email=sent_receipt.recipient.lower())
    assert suppression.reason == "bounced" and suppression.notification == sent_receipt


@pytest.mark.django_db
def test_a_temporary_bounce_is_logged_but_does_not_suppress_the_address(sent_receipt, track):
    track(sent_receipt, "blocked", reason="421 try again later")
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "bounced" and not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_complaint_suppresses_the_address(sent_receipt, track):
    track(sent_receipt, "delivered", "complained")
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "complained"
    assert receipt_status(sent_receipt) == "delivered"  # it did arrive
    assert Suppression.objects.get().reason == "complained"


@pytest.mark.django_db
def test_a_late_delivered_event_does_not_undo_a_bounce(sent_receipt, track):
    track(sent_receipt, "bounced", reason="550 no such user")
    track(sent_receipt, "delivered", "opened")
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "bounced" and sent_receipt.last_event == "opened"
    assert receipt_status(sent_receipt) == "bounced"


@pytest.mark.django_db
def test_a_drop_marks_the_notification_failed(sent_receipt, track):
    track(sent_receipt, "dropped")
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "failed" and receipt_status(sent_receipt) == "failed"
    assert not Suppression.objects.exists()


@pytest.mark.django_db
def test_events_for_unknown_messages_are_acknowledged_and_ignored(sent_receipt, provider):
    unknown = provider.tracking_event("not-one-of-ours", sent_receipt.recipient, "bounced")
    response = post_events(provider, [unknown])
    assert response.status_code == 200
    sent_receipt.refresh_from_db()
    assert sent_receipt.status == "sent" and not Suppression.objects.exists()


@pytest.mark.django_db
def test_a_later_send_to_a_bounced_address_is_skipped(sent_receipt, track, ride):
    track(sent_receipt, "bounced", reason="550 no such user")
    result = perform_job("notifications.send_welcome", {"user_id": ride.rider.user_id})
    assert result["skipped"].endswith("is suppressed (bounced)")
    assert Notification.objects.get(key=f"welcome:{ride.rider.user_id}").status == "suppressed"
