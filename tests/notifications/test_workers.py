"""Email through real `qcluster` workers and the SendGrid stand-in: an outage delays receipts
without slowing the API, losing any or sending any twice; a rejected address dies at once."""

import time

import pytest
from django.db.models import Count
from django.utils import timezone

from bimride.jobs.models import DeadLetter, Job, JobEvent
from notifications.models import Notification
from rides.models import Ride
from tests.conftest import client_for, wait_until
from tests.factories import RideFactory, RiderFactory

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

RECEIPT = "notifications.send_receipt"
COMPLETE_BODY = {"distance_km": "4.20", "duration_min": 14}
RIDES = 8


def rides_in_progress(driver, count: int) -> list[Ride]:
    now = timezone.now()
    return [
        RideFactory(
            rider=RiderFactory(),
            driver=driver,
            status="in_progress",
            accepted_at=now,
            started_at=now,
        )
        for _ in range(count)
    ]


def failed_twice(jobs) -> int:
    """How many of `jobs` have had two attempts fail (and a retry scheduled)."""
    retries = JobEvent.objects.filter(job__in=jobs, state="retrying")
    return retries.values("job").annotate(n=Count("id")).filter(n__gte=2).count()


def workers_sending_to(start_cluster, standin, **env):
    return start_cluster(
        "default", SENDGRID_API_KEY="test", SENDGRID_API_URL=standin.api_url, **env
    )


def test_receipts_survive_a_provider_outage_and_arrive_exactly_once(
    start_cluster, sendgrid, driver
):
    sendgrid.mode = "503"  # also for this process: a request path that sent email would fail
    # Back-offs at a tenth of production's: the ten attempts of the email policy outlast the
    # outage by far, and the recovery is still quick.
    workers_sending_to(start_cluster, sendgrid, JOB_RETRY_SCALE="0.1")
    rides = rides_in_progress(driver, RIDES)
    as_driver = client_for(driver.user)

    slowest = 0.0
    for ride in rides:
        started = time.monotonic()
        response = as_driver.post(f"/api/rides/{ride.pk}/complete", COMPLETE_BODY, format="json")
        slowest = max(slowest, time.monotonic() - started)
        assert response.status_code == 200 and response.data["receipt_status"] == "pending"
    assert slowest < 2.0  # not a benchmark: the request path never waits for the provider

    receipts = Job.objects.filter(name=RECEIPT)
    wait_until(
        lambda: failed_twice(receipts) == RIDES,
        timeout=30,
        what="every receipt to fail twice against the outage",
    )
    assert not receipts.filter(state__in=["succeeded", "dead"]).exists()
    assert sendgrid.count() == 0 and sendgrid.refused[503] >= 2 * RIDES
    assert set(Ride.objects.values_list("receipt_status", flat=True)) == {"pending"}

    sendgrid.mode = "ok"  # the provider is back
    wait_until(
        lambda: receipts.filter(state="succeeded").count() == RIDES,
        timeout=45,
        interval=0.2,
        what="every receipt to be sent after the outage",
    )
    expected = {(ride.rider.user.email, receipt_subject(ride)) for ride in rides}
    assert dict(sendgrid.per_recipient_and_subject()) == dict.fromkeys(expected, 1)
    assert not DeadLetter.objects.exists()
    assert set(Ride.objects.values_list("receipt_status", flat=True)) == {"sent"}
    notifications = Notification.objects.filter(template="receipt")
    assert notifications.count() == RIDES
    assert all(n.status == "sent" and n.attempts >= 3 for n in notifications)


def receipt_subject(ride: Ride) -> str:
    return Notification.objects.get(key=f"receipt:{ride.pk}").subject


def test_a_rejected_address_is_dead_lettered_after_one_attempt(start_cluster, sendgrid, driver):
    workers_sending_to(start_cluster, sendgrid)
    [ride] = rides_in_progress(driver, 1)
    sendgrid.reject_addresses = {ride.rider.user.email}
    response = client_for(driver.user).post(
        f"/api/rides/{ride.pk}/complete", COMPLETE_BODY, format="json"
    )
    assert response.status_code == 200

    receipt = Job.objects.filter(name=RECEIPT)
    wait_until(lambda: receipt.filter(state="dead").exists(), what="the receipt to die")
    letter = DeadLetter.objects.get(job__name=RECEIPT)
    assert letter.attempts == 1 and letter.error_class == "EmailRejected"
    assert "Does not contain a valid address" in letter.error_message
    notification = Notification.objects.get(key=f"receipt:{ride.pk}")
    assert notification.status == "failed" and notification.attempts == 1
    assert Ride.objects.get(pk=ride.pk).receipt_status == "failed"
    assert sendgrid.count() == 0 and sendgrid.refused[400] == 1
