"""Refunds from the staff API and the admin, promo codes at ride request."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import Job
from bimride.jobs.testing import perform_job
from payments.models import Refund
from rides import money
from rides.models import PromoCode, PromoRedemption, Ride
from tests.factories import DriverFactory
from tests.payments.conftest import DROPOFF, PICKUP, jobs_named, payment_of, ride_in

pytestmark = pytest.mark.django_db


@pytest.fixture
def captured(stripe_standin):
    """A ride whose fare (1174) was captured at the stand-in."""
    ride = ride_in("requested")
    perform_job("payments.authorize_payment", {"ride_id": ride.pk})
    ride.status, ride.fare_amount, ride.driver = "completed", 1174, DriverFactory()
    ride.save()
    perform_job("payments.capture_payment", {"ride_id": ride.pk})
    return payment_of(ride)


# --- refunds ------------------------------------------------------------------------------------
def test_staff_refund_part_of_a_payment_as_a_job(as_staff, captured, stripe_standin):
    response = as_staff.post(f"/api/payments/{captured.pk}/refunds", {"amount": 400})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["amount"] == 400 and body["status"] == "pending" and body["currency"] == "usd"
    job = Job.objects.get(pk=body["job"]["id"])
    assert job.idempotency_key == f"refund:{body['id']}" and job.payload == {
        "refund_id": body["id"],
        "ride_id": captured.ride_id,
    }
    assert job.concurrency_key == f"ride:{captured.ride_id}"
    run_job(job.pk)
    run_job(job.pk)  # a duplicate delivery does nothing
    refund = Refund.objects.get(pk=body["id"])
    assert refund.status == "succeeded" and refund.stripe_refund_id.startswith("re_")
    captured.refresh_from_db()
    assert captured.status == "partially_refunded" and captured.amount_refunded == 400
    assert len(stripe_standin.refunds) == 1
    [told] = jobs_named("notifications.send_refund_confirmation")
    assert told.payload == {
        "ride_id": captured.ride_id,
        "refund_id": refund.pk,
        "amount": 400,
        "currency": "usd",
    }


def test_staff_refund_the_rest_in_full(as_staff, captured):
    as_staff.post(f"/api/payments/{captured.pk}/refunds", {"amount": 174})
    response = as_staff.post(f"/api/payments/{captured.pk}/refunds", {})
    assert response.status_code == 202 and response.json()["amount"] == 1000
    for job in jobs_named("payments.refund_payment"):
        run_job(job.pk)
    captured.refresh_from_db()
    assert captured.status == "refunded" and captured.amount_refunded == 1174
    response = as_staff.post(f"/api/payments/{captured.pk}/refunds", {})
    assert response.status_code == 409


@pytest.mark.parametrize("amount", [0, -5, 1175, "ten"])
def test_a_refund_of_a_wrong_amount_answers_400_and_writes_nothing(as_staff, captured, amount):
    response = as_staff.post(f"/api/payments/{captured.pk}/refunds", {"amount": amount})
    assert response.status_code == 400 and "amount" in response.json()["error"]["fields"]
    assert not Refund.objects.exists() and not jobs_named("payments.refund_payment")


@pytest.mark.parametrize("who, status", [("anon", 401), ("rider", 403), ("driver", 403)])
def test_only_staff_can_refund(anon, as_rider, as_driver, captured, who, status):
    client = {"anon": anon, "rider": as_rider, "driver": as_driver}[who]
    response = client.post(f"/api/payments/{captured.pk}/refunds", {"amount": 100})
    assert response.status_code == status
    assert client.get(f"/api/payments/{captured.pk}").status_code == status
    assert not Refund.objects.exists()


def test_staff_see_a_payment_with_its_audit_trail(as_staff, captured):
    body = as_staff.get(f"/api/payments/{captured.pk}").json()
    assert body["status"] == "captured" and body["amount_captured"] == 1174
    assert [e["new"] for e in body["events"]] == ["authorized", "captured"]


def test_an_uncaptured_payment_cannot_be_refunded(as_staff, stripe_standin):
    ride = ride_in("requested")
    perform_job("payments.authorize_payment", {"ride_id": ride.pk})
    response = as_staff.post(f"/api/payments/{payment_of(ride).pk}/refunds", {})
    assert response.status_code == 409 and response.json()["error"]["code"] == "not_refundable"


def test_the_admin_refunds_in_full_and_partly(client, staff, captured):
    client.force_login(staff)
    url = "/admin/payments/payment/"
    response = client.post(
        url, {"action": "refund_in_full", "_selected_action": [captured.pk]}, follow=True
    )
    assert response.status_code == 200
    assert Refund.objects.get().amount == 1174
    assert client.get(f"{url}{captured.pk}/change/").status_code == 200
    Refund.objects.all().delete()
    Job.objects.filter(name="payments.refund_payment").delete()
    response = client.post(
        "/admin/payments/refund/add/", {"payment": captured.pk, "amount": 100, "reason": "late"}
    )
    assert response.status_code == 302, response.content[:2000]
    refund = Refund.objects.get()
    assert refund.amount == 100 and refund.requested_by == staff
    assert jobs_named("payments.refund_payment").get().payload == {
        "refund_id": refund.pk,
        "ride_id": captured.ride_id,
    }


# --- promo codes --------------------------------------------------------------------------------
def promo(**fields) -> PromoCode:
    values = {"code": "SAVE20", "kind": "percent", "value": 20}
    return PromoCode.objects.create(**(values | fields))


def test_a_promo_code_discounts_the_authorised_and_captured_amounts(as_rider, stripe_standin):
    code = promo(usage_limit=5)
    response = as_rider.post(
        "/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF, "promo_code": "save20"}
    )
    assert response.status_code == 201, response.content
    ride = Ride.objects.get(pk=response.json()["id"])
    code.refresh_from_db()
    assert code.times_used == 1 and PromoRedemption.objects.get().ride == ride
    perform_job("payments.authorize_payment", {"ride_id": ride.pk})
    payment = payment_of(ride)
    assert payment.amount == ride.estimated_fare - ride.estimated_fare * 20 // 100
    assert payment.discount == ride.estimated_fare * 20 // 100
    ride.status, ride.fare_amount, ride.driver = "completed", 1000, DriverFactory()
    ride.save()
    perform_job("payments.capture_payment", {"ride_id": ride.pk})
    payment.refresh_from_db()
    assert payment.amount_captured == 800


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"code": "OTHER"}, "Unknown"),
        ({"active": False}, "Unknown"),
        ({"expires_at": timezone.now() - timedelta(minutes=1)}, "expired"),
        ({"usage_limit": 2, "times_used": 2}, "used up"),
        ({"kind": "fixed", "value": 300, "currency": "eur"}, "currency"),
    ],
)
def test_an_unusable_promo_code_answers_400_and_writes_nothing(as_rider, fields, message):
    promo(**fields)
    response = as_rider.post(
        "/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF, "promo_code": "SAVE20"}
    )
    assert response.status_code == 400, response.content
    error = response.json()["error"]
    assert message in error["fields"]["promo_code"][0]
    assert not Ride.objects.exists() and not PromoRedemption.objects.exists()
    assert not Job.objects.exists()


def test_a_fixed_promo_never_makes_a_negative_amount():
    assert money.discount_on(1200, money.Promo(code="BIG", kind="fixed", value=5000)) == 1200


def test_expired_promo_codes_are_deactivated_by_the_daily_job():
    promo(expires_at=timezone.now() - timedelta(days=1))
    promo(code="LIVE", expires_at=timezone.now() + timedelta(days=1))
    assert perform_job("payments.expire_promo_codes", {}) == {"expired": 1}
    assert list(PromoCode.objects.filter(active=True).values_list("code", flat=True)) == ["LIVE"]


def test_a_promo_covering_the_whole_fare_authorises_and_captures_nothing(stripe_standin):
    ride = ride_in("requested")
    PromoRedemption.objects.create(promo=promo(value=100), ride=ride, rider=ride.rider)
    perform_job("payments.authorize_payment", {"ride_id": ride.pk})
    ride.status, ride.fare_amount, ride.driver = "completed", 1000, DriverFactory()
    ride.save()
    perform_job("payments.capture_payment", {"ride_id": ride.pk})
    assert payment_of(ride).status == "released" and stripe_standin.intents == {}
