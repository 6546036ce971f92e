"""Ops staff and email in the admin: the log's filters, resend, and the suppression list."""

import pytest
from django.test import Client

from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import Job
from bimride.jobs.testing import perform_job
from notifications.models import Notification, Suppression
from rides.models import Ride

LOG = "/admin/notifications/notification/"
SUPPRESSIONS = "/admin/notifications/suppression/"


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def sent_receipt(ride, postmark) -> Notification:
    perform_job("notifications.send_receipt", {"ride_id": ride.pk})
    return Notification.objects.get(key=f"receipt:{ride.pk}")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("query", "found"),
    [
        ("", True),
        ("status__exact=sent", True),
        ("status__exact=failed", False),
        ("template__exact=receipt", True),
        ("template__exact=welcome", False),
    ],
)
def test_the_log_lists_and_filters_notifications(admin_client, sent_receipt, query, found):
    page = admin_client.get(f"{LOG}?{query}")
    assert page.status_code == 200
    assert (f"{LOG}{sent_receipt.pk}/change/" in page.content.decode()) is found


@pytest.mark.django_db
def test_the_log_is_searchable_by_recipient_and_shows_a_notification(admin_client, sent_receipt):
    page = admin_client.get(f"{LOG}?q={sent_receipt.recipient}")
    assert f"{LOG}{sent_receipt.pk}/change/" in page.content.decode()
    detail = admin_client.get(f"{LOG}{sent_receipt.pk}/change/")
    assert detail.status_code == 200 and sent_receipt.message_id in detail.content.decode()


@pytest.mark.django_db
def test_resend_queues_a_new_job_that_sends_a_second_copy(admin_client, sent_receipt, postmark):
    response = admin_client.post(
        LOG, {"action": "resend", "_selected_action": [sent_receipt.pk]}, follow=True
    )
    assert response.status_code == 200 and "1 resend job(s) queued" in response.content.decode()
    resend = Notification.objects.get(resend_of=sent_receipt)
    assert resend.key == f"{sent_receipt.key}:resend:1" and resend.status == "queued"
    job = Job.objects.get(pk=resend.job_id)
    assert job.name == "notifications.send_receipt" and job.state == "queued"
    assert job.payload == {"ride_id": sent_receipt.ride_id, "notification_key": resend.key}
    assert Ride.objects.get(pk=sent_receipt.ride_id).receipt_status == "pending"

    run_job(job.pk)
    resend.refresh_from_db()
    assert resend.status == "sent" and resend.message_id != sent_receipt.message_id
    assert postmark.count(to=sent_receipt.recipient) == 2
    assert Ride.objects.get(pk=sent_receipt.ride_id).receipt_status == "sent"

    admin_client.post(LOG, {"action": "resend", "_selected_action": [resend.pk]})
    assert Notification.objects.filter(resend_of=sent_receipt).count() == 2  # resends of the root


@pytest.mark.django_db
def test_resend_to_a_suppressed_address_is_refused(admin_client, sent_receipt):
    Suppression.objects.create(email=sent_receipt.recipient.lower(), reason="complained")
    response = admin_client.post(
        LOG, {"action": "resend", "_selected_action": [sent_receipt.pk]}, follow=True
    )
    assert "remove the suppression first" in response.content.decode()
    assert not Notification.objects.filter(resend_of=sent_receipt).exists()


@pytest.mark.django_db
def test_staff_add_a_suppression_in_lower_case_and_remove_it(admin_client):
    response = admin_client.post(
        f"{SUPPRESSIONS}add/", {"email": "Someone@Example.COM", "reason": "manual", "detail": "x"}
    )
    assert response.status_code == 302, response.content.decode()[:2000]
    suppression = Suppression.objects.get()
    assert suppression.email == "someone@example.com" and suppression.reason == "manual"

    listing = admin_client.get(f"{SUPPRESSIONS}?q=someone")
    assert "someone@example.com" in listing.content.decode()
    admin_client.post(SUPPRESSIONS, {"action": "remove", "_selected_action": [suppression.pk]})
    assert not Suppression.objects.exists()
