"""`manage.py receipts_check`: receipts that said a total other than what the card was charged
are found, and `--resend` sends each ride one corrected receipt through the receipt job."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import Job
from notifications.models import Notification
from payments.models import Payment
from rides.models import PromoCode, PromoRedemption
from tests.factories import RiderFactory
from tests.notifications.conftest import completed_ride

pytestmark = pytest.mark.django_db

FARE = 1174


def receipted(*, captured: int, stated: int | None, discount_at_authorisation: int = 0):
    """A completed ride charged `captured` whose receipt went out saying `stated` (None: sent
    before receipts recorded their total, when they said the fare less the stored discount)."""
    rider = RiderFactory()
    ride = completed_ride(
        rider, charges={"authorized": 1500, "captured": captured, "settled": True}
    )
    Payment.objects.create(
        ride=ride, rider=rider, amount=1500, amount_captured=captured, status="captured",
        discount=discount_at_authorisation, currency="usd", stripe_payment_intent_id="pi_x",
    )  # fmt: skip
    Notification.objects.create(
        key=f"receipt:{ride.pk}", template="receipt", recipient=rider.user.email, ride=ride,
        subject="Your BimRide receipt", status="sent", amount=stated, sent_at=timezone.now(),
        message_id=f"m-{ride.pk}",
        job_name="notifications.send_receipt", payload={"ride_id": ride.pk},
    )  # fmt: skip
    return ride


def check(*args) -> str:
    out = StringIO()
    call_command("receipts_check", *args, stdout=out, stderr=StringIO())
    return out.getvalue()


def test_only_receipts_that_disagree_with_the_charge_are_listed():
    receipted(captured=FARE, stated=FARE)
    wrong = receipted(captured=FARE - 117, stated=FARE)  # a 10 % promo on the final fare
    legacy = receipted(captured=1057, stated=None, discount_at_authorisation=150)
    promo = PromoCode.objects.create(code="TEN", kind="percent", value=10)
    for ride in (wrong, legacy):
        PromoRedemption.objects.create(promo=promo, ride=ride, rider=ride.rider)
    out = check()
    assert f"ride {wrong.pk}: receipt said $11.74, card charged $10.57" in out
    assert f"ride {legacy.pk}: receipt said $10.24, card charged $10.57" in out
    assert "2 receipt(s) disagree" in out and "--resend" in out
    assert not Job.objects.exists()


def test_resend_sends_one_corrected_receipt_per_ride_however_often_it_runs(postmark):
    ride = receipted(captured=FARE - 117, stated=FARE)
    PromoRedemption.objects.create(
        promo=PromoCode.objects.create(code="TEN", kind="percent", value=10),
        ride=ride,
        rider=ride.rider,
    )
    assert "1 corrected receipt job(s)" in check("--resend")
    check("--resend")
    [job] = Job.objects.filter(name="notifications.send_receipt")
    run_job(job.pk)
    [message] = postmark.received()
    assert message.subject.startswith("Your corrected BimRide receipt")
    assert "Total: $10.57" in message.text and "Discount (TEN): -$1.17" in message.text
    assert "This corrects the receipt" in message.text
    assert "0 receipt(s) disagree" in check()
    check("--resend")
    assert Job.objects.filter(name="notifications.send_receipt").count() == 1
