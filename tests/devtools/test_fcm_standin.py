"""The FCM stand-in itself: Google's token exchange (a signed JWT for an access token), FCM's
`messages:send` and its errors, and its standalone mode."""

import json
import sys
import time

import pytest
import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from google.auth import crypt, jwt

from devtools.fcm_standin import CLIENT_EMAIL, PROJECT
from devtools.supervisor import Process, free_port, wait_http

MESSAGE = {"message": {"token": "device-token", "notification": {"title": "Hi", "body": "Yo"}}}
GRANT = "urn:ietf:params:oauth:grant-type:jwt-bearer"


def assertion(standin, private_key: str | None = None, **claims) -> str:
    now = int(time.time())
    payload = {
        "iss": CLIENT_EMAIL,
        "aud": f"{standin.api_base}/token",
        "scope": "https://www.googleapis.com/auth/firebase.messaging",
        "iat": now,
        "exp": now + 3600,
    } | claims
    signer = crypt.RSASigner.from_string(private_key or standin.private_key, "k")
    return jwt.encode(signer, payload).decode()


def access_token(standin) -> str:
    answer = requests.post(
        f"{standin.api_base}/token",
        data={"grant_type": GRANT, "assertion": assertion(standin)},
        timeout=5,
    )
    assert answer.status_code == 200
    return answer.json()["access_token"]


def send(standin, token: str, body: dict = MESSAGE) -> requests.Response:
    return requests.post(
        f"{standin.api_base}/v1/projects/{PROJECT}/messages:send",
        json=body,
        headers={"Authorization": f"Bearer {token}"},
        timeout=5,
    )


def test_the_token_exchange_takes_only_a_jwt_signed_by_the_accounts_key(fcm_standin):
    stranger = rsa.generate_private_key(public_exponent=65537, key_size=2048).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    for bad in (
        assertion(fcm_standin, stranger.decode()),
        assertion(fcm_standin, scope="https://www.googleapis.com/auth/cloud-platform"),
        assertion(fcm_standin, exp=int(time.time()) - 3600, iat=int(time.time()) - 7200),
    ):
        answer = requests.post(
            f"{fcm_standin.api_base}/token", data={"grant_type": GRANT, "assertion": bad}, timeout=5
        )
        assert answer.status_code == 400 and answer.json()["error"] == "invalid_grant"
    assert access_token(fcm_standin).startswith("ya29.")


def test_it_answers_like_fcms_messages_send(fcm_standin):
    token = access_token(fcm_standin)
    assert send(fcm_standin, "not-issued").status_code == 401
    sent = send(fcm_standin, token)
    assert sent.status_code == 200 and sent.json()["name"].startswith(f"projects/{PROJECT}/")
    assert [m.title for m in fcm_standin.received(token="device-token")] == ["Hi"]

    fcm_standin.unregistered.add("device-token")
    gone = send(fcm_standin, token)
    assert gone.status_code == 404
    assert gone.json()["error"]["details"][0]["errorCode"] == "UNREGISTERED"
    fcm_standin.unregistered.clear()

    fcm_standin.set_mode("429", retry_after=30, times=1)
    throttled = send(fcm_standin, token)
    assert throttled.status_code == 429 and throttled.headers["Retry-After"] == "30"
    assert throttled.json()["error"]["details"][0]["errorCode"] == "QUOTA_EXCEEDED"
    assert send(fcm_standin, token).status_code == 200  # `times` ran out: ok again

    fcm_standin.set_mode("503")
    assert send(fcm_standin, token).status_code == 503
    assert send(fcm_standin, token, {"nothing": 1}).status_code == 400
    assert fcm_standin.refused == {401: 1, 404: 1, 429: 1, 503: 1, 400: 1}


@pytest.fixture
def standalone(tmp_path):
    port = free_port()
    key = tmp_path / "key.json"
    command = [sys.executable, "-m", "devtools.fcm_standin", "--port", str(port), "--key", str(key)]
    process = Process("fcm-standin", command)
    yield f"http://127.0.0.1:{port}", key
    assert process.stop(grace=5), "the stand-in did not stop on SIGTERM"


def test_it_runs_standalone_with_its_key_file_and_is_switched_over_http(standalone):
    base, key = standalone
    wait_http(f"{base}/_standin/messages", 10)
    account = json.loads(key.read_text())
    assert account["token_uri"] == f"{base}/token" and account["project_id"] == PROJECT
    switched = requests.post(f"{base}/_standin/mode", json={"mode": "503"}, timeout=5)
    assert switched.json() == {"mode": "503"}
    assert requests.post(f"{base}/_standin/mode", json={"mode": "x"}, timeout=5).status_code == 400
    shown = requests.get(f"{base}/_standin/messages", timeout=5).json()
    assert shown == {"messages": [], "refused": {}, "mode": "503"}
