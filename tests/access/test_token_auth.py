"""API tokens: one narrow query per token and process, kept for AUTH_TOKEN_CACHE_SECONDS, and
forgotten at once when the token is deleted or its user saved."""

import pytest
from django.db import connection
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from bimride import authentication
from tests.conftest import client_for

pytestmark = pytest.mark.django_db

PING = {"lat": 52.52, "lng": 13.405}


def test_a_token_its_user_and_profile_are_one_query(driver, django_assert_num_queries):
    client = client_for(driver.user)
    # the token with user and driver, then the location statement
    with django_assert_num_queries(2):
        assert client.post("/api/drivers/me/location", PING, format="json").status_code == 202


def test_a_token_checked_once_is_not_read_again_in_the_process(driver, django_assert_num_queries):
    client = client_for(driver.user)
    client.post("/api/drivers/me/location", PING, format="json")
    with django_assert_num_queries(1):  # the location statement only
        assert client.post("/api/drivers/me/location", PING, format="json").status_code == 202


def test_each_request_gets_its_own_profile_objects(driver):
    first = authentication.TokenAuthentication().authenticate_credentials(
        driver.user.auth_token.key
    )
    first[0].driver.name = "changed by one request"
    again = authentication.TokenAuthentication().authenticate_credentials(
        driver.user.auth_token.key
    )
    assert again[0].driver.name == driver.name
    assert again[0].pk == driver.user.pk


def test_a_deleted_token_is_refused_at_once(driver):
    client = client_for(driver.user)
    assert client.post("/api/drivers/me/location", PING, format="json").status_code == 202
    Token.objects.get(user=driver.user).delete()
    answer = client.post("/api/drivers/me/location", PING, format="json")
    assert answer.status_code == 401
    assert answer.json()["error"]["code"] == "authentication_failed"


def test_a_deactivated_user_is_refused_at_once(driver):
    client = client_for(driver.user)
    assert client.post("/api/drivers/me/location", PING, format="json").status_code == 202
    driver.user.is_active = False
    driver.user.save()
    assert client.post("/api/drivers/me/location", PING, format="json").status_code == 401


def test_a_token_deleted_elsewhere_lapses_within_the_ttl(driver, settings, monkeypatch):
    """Another process's delete sends no signal here: the kept token lapses after the TTL."""
    settings.AUTH_TOKEN_CACHE_SECONDS = 10
    now = [1000.0]
    monkeypatch.setattr(authentication.time, "monotonic", lambda: now[0])
    client = client_for(driver.user)
    assert client.post("/api/drivers/me/location", PING, format="json").status_code == 202
    with connection.cursor() as cursor:  # no signal here, as when another process deletes it
        cursor.execute("DELETE FROM authtoken_token WHERE user_id = %s", [driver.user.pk])
    now[0] += 9
    assert client.post("/api/drivers/me/location", PING, format="json").status_code == 202
    now[0] += 2
    assert client.post("/api/drivers/me/location", PING, format="json").status_code == 401


def test_without_the_cache_every_request_reads_its_token(
    driver, settings, django_assert_num_queries
):
    settings.AUTH_TOKEN_CACHE_SECONDS = 0
    client = client_for(driver.user)
    client.post("/api/drivers/me/location", PING, format="json")
    with django_assert_num_queries(2):
        assert client.post("/api/drivers/me/location", PING, format="json").status_code == 202
    Token.objects.filter(user=driver.user).delete()
    assert client.post("/api/drivers/me/location", PING, format="json").status_code == 401


def test_an_unknown_token_is_refused_and_not_kept(db):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    assert client.get("/api/rides").status_code == 401
    assert authentication.tokens.get("0" * 40) is None


def test_the_cache_stays_within_its_size(driver, rider, settings):
    settings.AUTH_TOKEN_CACHE_SIZE = 1
    for user in (driver.user, rider.user):
        authentication.TokenAuthentication().authenticate_credentials(user.auth_token.key)
    assert authentication.tokens.get(driver.user.auth_token.key) is None
    assert authentication.tokens.get(rider.user.auth_token.key) is not None
