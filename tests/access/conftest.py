"""Signing in by each way in, from a chosen address."""

from django.test import Client
from rest_framework.test import APIClient

ADMIN, API_LOGIN, TOKEN = "/admin/login/", "/api-auth/login/", "/api/auth/token"
WAYS = ["admin", "browsable_api", "token"]
PATHS = {"admin": ADMIN, "browsable_api": API_LOGIN, "token": TOKEN}


def sign_in(way: str, username: str, password: str, *, ip: str = "10.0.0.1", code: str = ""):
    """One sign-in attempt; the response carries the client as `.client`."""
    if way == "token":
        client = APIClient(REMOTE_ADDR=ip)
        body = {"email": username, "password": password, **({"otp_token": code} if code else {})}
        response = client.post(TOKEN, body, format="json")
    else:
        client = Client(REMOTE_ADDR=ip)
        data = {"username": username, "password": password, "otp_token": code, "next": "/admin/"}
        response = client.post(PATHS[way], data)
    response.client = client
    return response


def signed_in(way: str, response) -> bool:
    if way == "token":
        return response.status_code == 200 and bool(response.json().get("token"))
    return response.status_code == 302 and "_auth_user_id" in response.client.session
