"""The SendGrid stand-in itself: SendGrid's answers, and its standalone mode."""

import socket
import subprocess
import sys

import pytest
import requests

from tests.conftest import ROOT, wait_until

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
    assert sendgrid_standin.received()[0].anymail_id == "a1"
    assert dict(sendgrid_standin.refused) == {401: 1, 400: 1, 503: 1}


@pytest.fixture
def standalone():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    process = subprocess.Popen(
        [sys.executable, "-m", "devtools.sendgrid_standin", "--port", str(port)],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
    )
    yield f"http://127.0.0.1:{port}"
    process.terminate()
    process.wait(timeout=5)


def test_it_runs_standalone_and_is_switched_over_http(standalone):
    def up():
        try:
            return call(f"{standalone}/_standin/messages")[0] == 200
        except requests.ConnectionError:
            return False

    wait_until(up, timeout=10, what="the standalone stand-in")
    assert call(f"{standalone}/v3/mail/send", MAIL)[0] == 202
    assert call(f"{standalone}/_standin/mode", {"mode": "503"})[0] == 200
    assert call(f"{standalone}/v3/mail/send", MAIL)[0] == 503
    messages = call(f"{standalone}/_standin/messages")[2]
    assert [m["to"] for m in messages["messages"]] == ["ada@example.com"]
    assert messages["refused"] == {"503": 1}
