"""The Postmark stand-in itself: Postmark's answers, its tracking events, its standalone mode."""

import json
import sys

import pytest
import requests

from devtools.supervisor import Process, free_port, wait_http

MAIL = {
    "From": "BimRide <rides@bimride.example>",
    "To": "Ada Lovelace <Ada@Example.com>",
    "Subject": "Hello",
    "TextBody": "Hi",
    "HtmlBody": "<p>Hi</p>",
    "MessageStream": "outbound",
}


def call(url: str, body: dict | None = None, token: bool = True) -> tuple[int, dict]:
    headers = {"X-Postmark-Server-Token": "test"} if token else {}
    if body is None:
        response = requests.get(url, timeout=5)
    else:
        response = requests.post(url, json=body, headers=headers, timeout=5)
    return response.status_code, response.json() if response.content else {}


def test_it_answers_like_postmarks_email_api(postmark_standin):
    url = f"{postmark_standin.api_url}email"
    status, body = call(url, MAIL)
    assert status == 200 and body["ErrorCode"] == 0 and body["MessageID"]
    assert call(url, MAIL, token=False)[0] == 401

    postmark_standin.reject_addresses = {"ada@example.com"}
    status, rejected = call(url, MAIL)
    assert status == 422 and rejected["ErrorCode"] == 300
    assert rejected["Message"] == "Invalid 'To' address: 'ada@example.com'."

    postmark_standin.mode = "503"
    assert call(url, MAIL)[0] == 503
    [received] = postmark_standin.received()
    assert (received.to, received.subject, received.text) == ("ada@example.com", "Hello", "Hi")
    assert received.tracking_id == received.message_id == body["MessageID"]
    assert dict(postmark_standin.refused) == {401: 1, 422: 1, 503: 1}


def test_its_tracking_events_are_postmarks_one_per_request(postmark_standin):
    bounce = postmark_standin.tracking_event("m-1", "ada@example.com", "bounced", reason="550")
    assert bounce["RecordType"] == "Bounce" and bounce["Type"] == "HardBounce"
    assert bounce["MessageID"] == "m-1" and bounce["Details"] == "550" and bounce["BouncedAt"]
    opened = postmark_standin.tracking_event("m-1", "ada@example.com", "opened")
    bodies = postmark_standin.webhook_bodies([bounce, opened])
    assert [json.loads(b)["RecordType"] for b in bodies] == ["Bounce", "Open"]


@pytest.fixture
def standalone():
    port = free_port()
    command = [sys.executable, "-m", "devtools.postmark_standin", "--port", str(port)]
    process = Process("postmark-standin", command)
    yield f"http://127.0.0.1:{port}"
    assert process.stop(grace=5), "the stand-in did not stop on SIGTERM"


def test_it_runs_standalone_and_is_switched_over_http(standalone):
    wait_http(f"{standalone}/_standin/messages", 10)
    assert call(f"{standalone}/email", MAIL)[0] == 200
    assert call(f"{standalone}/_standin/mode", {"mode": "503"})[0] == 200
    assert call(f"{standalone}/email", MAIL)[0] == 503
    messages = call(f"{standalone}/_standin/messages")[1]
    assert [m["to"] for m in messages["messages"]] == ["ada@example.com"]
    assert messages["refused"] == {"503": 1} and messages["receipts"] == 0
