"""The devices and preferences API as an app uses it: registering, moving and deleting push
tokens, the permission matrix, bad inputs in the error shape, and per-kind preferences."""

import logging

import pytest

from notifications.models import Device, Preference
from tests.conftest import client_for
from tests.factories import RiderFactory

pytestmark = pytest.mark.django_db

TOKEN = "fcm-token-" + "x" * 140
BODY = {"token": TOKEN, "platform": "android", "app_version": "3.2.1", "locale": "de-DE"}


def register(client, **fields):
    return client.post("/api/devices", BODY | fields, format="json")


def test_a_rider_registers_a_device_and_the_token_never_comes_back(as_rider, rider, caplog):
    caplog.set_level(logging.DEBUG)
    response = register(as_rider)
    assert response.status_code == 201
    assert response.data["platform"] == "android" and response.data["locale"] == "de-DE"
    assert "token" not in response.data and TOKEN not in response.content.decode()
    device = Device.objects.get()
    assert device.user == rider.user and device.token == TOKEN and device.active
    listed = as_rider.get("/api/devices")
    assert listed.status_code == 200
    assert [d["id"] for d in listed.data["results"]] == [device.pk]
    assert TOKEN not in listed.content.decode()
    assert TOKEN not in caplog.text


def test_registering_the_same_token_again_moves_it_instead_of_duplicating(
    as_rider, rider, other_rider
):
    first = register(as_rider)
    again = register(as_rider, app_version="3.3.0")
    assert again.status_code == 200 and again.data["id"] == first.data["id"]
    assert Device.objects.get().app_version == "3.3.0"

    moved = register(client_for(other_rider.user))  # the phone changed hands
    assert moved.status_code == 200 and moved.data["id"] == first.data["id"]
    assert Device.objects.count() == 1 and Device.objects.get().user == other_rider.user
    assert as_rider.get("/api/devices").data["results"] == []


def test_a_deactivated_token_registered_again_is_active_again(as_rider):
    device_id = register(as_rider).data["id"]
    Device.objects.filter(pk=device_id).update(active=False, deactivated_reason="unregistered")
    assert register(as_rider).status_code == 200
    device = Device.objects.get(pk=device_id)
    assert device.active and device.deactivated_reason == ""


def test_a_user_has_several_devices_and_deletes_one(as_driver):
    phone = register(as_driver, token="phone-token").data["id"]
    tablet = register(as_driver, token="tablet-token", platform="ios").data["id"]
    assert {d["id"] for d in as_driver.get("/api/devices").data["results"]} == {phone, tablet}
    assert as_driver.delete(f"/api/devices/{phone}").status_code == 204
    assert list(Device.objects.values_list("pk", flat=True)) == [tablet]


def test_nobody_sees_or_deletes_another_users_device(as_rider, other_rider):
    device_id = register(as_rider).data["id"]
    other = client_for(other_rider.user)
    assert other.get("/api/devices").data["results"] == []
    response = other.delete(f"/api/devices/{device_id}")
    assert response.status_code == 404
    assert response.data["error"]["code"] == "not_found"
    assert Device.objects.filter(pk=device_id).exists()


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/devices"),
        ("post", "/api/devices"),
        ("delete", "/api/devices/1"),
        ("get", "/api/me/notifications"),
        ("patch", "/api/me/notifications"),
    ],
)
def test_signed_out_callers_get_401(anon, method, path):
    response = getattr(anon, method)(path, {}, format="json")
    assert response.status_code == 401
    assert response.data["error"]["code"] == "not_authenticated"


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"platform": "blackberry"}, "platform"),
        ({"token": ""}, "token"),
        ({"token": "   "}, "token"),
        ({"token": "t" * 1025}, "token"),
        ({"locale": "l" * 21}, "locale"),
        ({"app_version": "v" * 41}, "app_version"),
    ],
)
def test_bad_devices_are_a_400_in_the_error_shape_and_write_nothing(as_rider, fields, field):
    response = register(as_rider, **fields)
    assert response.status_code == 400
    assert response.data["error"]["code"] == "invalid"
    assert field in response.data["error"]["fields"]
    assert not Device.objects.exists()


def test_a_replayed_registration_with_its_idempotency_key_answers_the_first_response(as_rider):
    first = as_rider.post("/api/devices", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    replay = as_rider.post("/api/devices", BODY, format="json", HTTP_IDEMPOTENCY_KEY="k1")
    assert first.status_code == replay.status_code == 201
    assert replay.data == first.data and Device.objects.count() == 1


# --- preferences --------------------------------------------------------------------------------
def test_every_kind_is_on_by_push_and_email_until_turned_off(as_rider):
    response = as_rider.get("/api/me/notifications")
    assert response.status_code == 200
    kinds = {p["kind"]: p for p in response.data["preferences"]}
    assert kinds["ride_completed"] == {
        "kind": "ride_completed",
        "audience": "rider",
        "push": True,
        "email": True,  # the receipt
    }
    assert kinds["driver_arriving"]["email"] is None  # a push only
    assert kinds["ride_offer"]["audience"] == "driver"


def test_a_rider_turns_pushes_and_receipts_off_per_kind(as_rider, rider):
    body = {
        "preferences": [
            {"kind": "driver_arriving", "push": False},
            {"kind": "ride_completed", "email": False},
        ]
    }
    response = as_rider.patch("/api/me/notifications", body, format="json")
    assert response.status_code == 200
    kinds = {p["kind"]: p for p in response.data["preferences"]}
    assert kinds["driver_arriving"]["push"] is False
    assert kinds["ride_completed"] == {
        "kind": "ride_completed",
        "audience": "rider",
        "push": True,
        "email": False,
    }
    assert Preference.objects.filter(user=rider.user).count() == 2
    again = client_for(rider.user).get("/api/me/notifications").data["preferences"]
    assert {p["kind"]: p for p in again} == kinds
    other = client_for(RiderFactory().user).get("/api/me/notifications").data["preferences"]
    assert all(p["push"] for p in other)


@pytest.mark.parametrize(
    "body",
    [
        {"preferences": [{"kind": "driver_arriving", "email": True}]},  # has no email
        {"preferences": [{"kind": "no_such_kind", "push": False}]},
        {"preferences": [{"kind": "ride_started"}]},  # neither channel
        {"preferences": []},
        {"preferences": [{"kind": "ride_started", "push": "sometimes"}]},
        {},
    ],
)
def test_bad_preferences_are_a_400_and_change_nothing(as_rider, body):
    response = as_rider.patch("/api/me/notifications", body, format="json")
    assert response.status_code == 400
    assert response.data["error"]["code"] == "invalid"
    assert not Preference.objects.exists()
