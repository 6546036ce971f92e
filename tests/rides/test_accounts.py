"""Registering riders and drivers and exchanging credentials for a token."""

import pytest
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bimride.jobs.models import Job
from rides.models import Driver, Rider
from tests.factories import PASSWORD
from tests.rides.conftest import assert_error, db_snapshot

User = get_user_model()
PASS = "a-good-long-pass-9"


def _register(client: APIClient, role: str, email: str = "Ada@Example.com", **headers):
    body = {"email": email, "password": PASS, "name": "Ada Lovelace", "role": role}
    return client.post("/api/auth/register", body, format="json", **headers)


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("role", "profile", "own_page"),
    [("rider", Rider, "/api/rides"), ("driver", Driver, "/api/drivers/me/offers")],
)
def test_registering_creates_the_account_its_profile_token_and_welcome_job(
    anon, role, profile, own_page
):
    response = _register(anon, role)

    assert response.status_code == 201, response.content
    body = response.json()
    user = User.objects.get()
    assert body == {
        "id": user.pk,
        "email": "ada@example.com",
        "name": "Ada Lovelace",
        "role": role,
        "token": Token.objects.get(user=user).key,
    }
    assert user.username == user.email == "ada@example.com"
    assert user.check_password(PASS)
    assert profile.objects.get(user=user).name == "Ada Lovelace"
    assert not (Driver if profile is Rider else Rider).objects.exists()
    welcome = Job.objects.get(name="notifications.send_welcome")
    assert (welcome.name, welcome.payload, welcome.state) == (
        "notifications.send_welcome",
        {"user_id": user.pk},
        "queued",
    )
    assert welcome.subject == f"user:{user.pk}"

    authed = APIClient()
    authed.credentials(HTTP_AUTHORIZATION=f"Token {body['token']}")
    assert authed.get(own_page).status_code == 200


@pytest.mark.django_db
def test_a_registered_rider_cannot_use_driver_endpoints(anon):
    token = _register(anon, "rider").json()["token"]
    anon.credentials(HTTP_AUTHORIZATION=f"Token {token}")

    assert_error(anon.get("/api/drivers/me/offers"), 403, "permission_denied")


@pytest.mark.django_db
def test_registering_an_email_twice_in_any_case_answers_400(anon):
    assert _register(anon, "rider").status_code == 201
    before = db_snapshot()

    response = _register(anon, "driver", email="  ADA@example.COM ")

    error = assert_error(response, 400, "invalid")
    assert error["fields"] == {"email": ["An account with this email already exists."]}
    assert db_snapshot() == before


@pytest.mark.django_db
def test_registering_with_a_password_like_the_email_answers_400(anon):
    body = {"email": "ada.lovelace@example.com", "password": "ada.lovelace", "name": "A"}
    response = anon.post("/api/auth/register", {**body, "role": "rider"}, format="json")

    error = assert_error(response, 400, "invalid")
    assert list(error["fields"]) == ["password"]
    assert not User.objects.exists()


@pytest.mark.django_db
def test_register_ignores_a_token_sent_along(anon, rider):
    """Registration is for anyone: a stale or foreign token does not get in the way."""
    anon.credentials(HTTP_AUTHORIZATION="Token not-a-real-token")

    assert _register(anon, "rider").status_code == 201


@pytest.mark.django_db
def test_token_exchange_returns_the_accounts_token(anon, rider):
    response = anon.post(
        "/api/auth/token",
        {"email": f"  {rider.user.email.upper()} ", "password": PASSWORD},
        format="json",
    )

    assert response.status_code == 200, response.content
    assert response.json() == {"token": rider.user.auth_token.key}
    assert Token.objects.count() == 1


@pytest.mark.django_db
def test_token_exchange_creates_a_missing_token(anon, rider):
    Token.objects.all().delete()

    response = anon.post(
        "/api/auth/token", {"email": rider.user.email, "password": PASSWORD}, format="json"
    )

    assert response.status_code == 200
    assert response.json() == {"token": Token.objects.get(user=rider.user).key}


@pytest.mark.django_db
def test_token_exchange_answers_the_same_for_a_wrong_password_and_an_unknown_email(anon, rider):
    wrong = anon.post(
        "/api/auth/token", {"email": rider.user.email, "password": "nope-nope"}, format="json"
    )
    unknown = anon.post(
        "/api/auth/token", {"email": "ghost@example.com", "password": PASSWORD}, format="json"
    )

    assert_error(wrong, 400, "invalid_credentials")
    assert wrong.json() == unknown.json()


@pytest.mark.django_db
def test_an_inactive_account_gets_no_token(anon, rider):
    rider.user.is_active = False
    rider.user.save()

    response = anon.post(
        "/api/auth/token", {"email": rider.user.email, "password": PASSWORD}, format="json"
    )

    assert_error(response, 400, "invalid_credentials")


@pytest.mark.django_db
def test_a_wrong_token_answers_401(anon, rider):
    anon.credentials(HTTP_AUTHORIZATION="Token 0123456789abcdef")

    assert_error(anon.get("/api/rides"), 401, "authentication_failed")


@pytest.mark.django_db
def test_a_replayed_registration_returns_the_first_account(anon):
    first = _register(anon, "rider", HTTP_IDEMPOTENCY_KEY="signup-1")
    before = db_snapshot()
    again = _register(anon, "rider", HTTP_IDEMPOTENCY_KEY="signup-1")

    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again["Idempotent-Replayed"] == "true"
    assert User.objects.count() == 1
    assert db_snapshot() == before
