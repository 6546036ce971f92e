"""Promo codes in the admin: they live with the fares, in rides."""

import pytest
from django.test import Client

from rides.models import PromoCode

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


def test_staff_add_a_promo_code_in_the_admin_and_list_codes_and_redemptions(admin_client):
    response = admin_client.post(
        "/admin/rides/promocode/add/",
        {
            "code": "SPRING15",
            "kind": "percent",
            "value": 15,
            "currency": "usd",
            "active": "on",
            "created_at_0": "2026-03-01",
            "created_at_1": "08:00:00",
        },
    )
    assert response.status_code == 302, response.content
    assert PromoCode.objects.get(code="SPRING15").value == 15
    listing = admin_client.get("/admin/rides/promocode/")
    assert listing.status_code == 200 and b"SPRING15" in listing.content
    assert admin_client.get("/admin/rides/promoredemption/").status_code == 200
