"""The SendGrid stand-in itself: SendGrid's answers, and its standalone mode."""

import sys

import pytest
import requests

from devtools.supervisor import Process, free_port, wait_http

MAIL = {
    "personalizations": [
        {"to": [{"email": "Ada@Example.com"}], "custom_args": {"anymail_id": "a1"}}
    ],
    "from": {"email": "rides@bimride.example"},
    "subject": "Hello",
    "content": [{"type": "text/plain", "value": "Hi"}],
}


def call(url: str, body: dict | None = None, bearer: bool = True) -> tuple[int, dict, dict]:
    headers = {"Authorization": "Bearer test"} if bearer else {}
    if body is None:
        response = requests.get(url, timeout=5)
    else:
        response = requests.post(url, json=body, headers=headers, timeout=5)
    return response.status_code, response.headers, response.json() if response.content else {}


def test_it_answers_like_sendgrids_mail_send(sendgrid_standin):
    url = f"{sendgrid_standin.api_url}mail/send"
    status, headers, _ = call(url, MAIL)
    assert status == 202 and headers["X-Message-Id"]
    assert call(url, MAIL, bearer=False)[0] == 401

    sendgrid_standin.reject_addresses = {"ada@example.com"}
    status, _, body = call(url, MAIL)
    assert status == 400 and body["errors"][0]["message"] == "Does not contain a valid address."

    sendgrid_standin.mode = "503"
    assert call(url, MAIL)[0] == 503
    assert sendgrid_standin.count(to="ada@example.com", subject="Hello") == 1
    assert sendgrid_standin.received()[0].tracking_id == "a1"
    assert dict(sendgrid_standin.refused) == {401: 1, 400: 1, 503: 1}


@pytest.fixture
def standalone():
    port = free_port()
    command = [sys.executable, "-m", "devtools.sendgrid_standin", "--port", str(port)]
    process = Process("sendgrid-standin", command)
    yield f"http://127.0.0.1:{port}"
    assert process.stop(grace=5), "the stand-in did not stop on SIGTERM"


def test_it_runs_standalone_and_is_switched_over_http(standalone):
    wait_http(f"{standalone}/_standin/messages", 10)
    assert call(f"{standalone}/v3/mail/send", MAIL)[0] == 202
    assert call(f"{standalone}/_standin/mode", {"mode": "503"})[0] == 200
    assert call(f"{standalone}/v3/mail/send", MAIL)[0] == 503
    messages = call(f"{standalone}/_standin/messages")[2]
    assert [m["to"] for m in messages["messages"]] == ["ada@example.com"]
    assert messages["refused"] == {"503": 1}
