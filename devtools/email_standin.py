"""What the email provider stand-ins share: the modes, the counting, the control API, the server.

A provider's stand-in (`postmark_standin`, `sendgrid_standin`) says only how that provider's
send API reads a request and answers it, and how its tracking events look. Everything else is
here, once: the mode switch ("ok"; "503", an outage; "slow", each answer `delay` seconds late;
"reject", set by `reject_addresses`, refusing those addresses in every mode but "503"), the
record of what was accepted and refused, and the standalone control API:
`POST /_standin/mode {"mode": "503"}` (or "ok", "slow" with "delay", "reject" with
"addresses") and `GET /_standin/messages`.

`latency`, as slow as the provider on demand, is seconds added to every send request in every
mode (a constructor argument; standalone `--latency` or EMAIL_STANDIN_LATENCY; `POST
/_standin/latency {"seconds": 2}`). Requests are answered concurrently, a thread each, and
`peak_in_flight` says how many were in the stand-in at once.
"""

import argparse
import json
import os
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from email.utils import getaddresses
from http.server import BaseHTTPRequestHandler

from devtools.loopback import LoopbackServer, json_handler

MODES = ("ok", "503", "reject", "slow")

EVENT_KINDS = ("delivered", "bounced", "blocked", "complained", "opened", "dropped")


@dataclass
class Received:
    """One message a stand-in accepted."""

    to: str
    subject: str
    message_id: str  # the id the send API answered
    tracking_id: str  # the id anymail reports for the message, the one tracking events carry
    text: str = ""
    html: str = ""
    at: float = field(default_factory=time.time)


@dataclass(frozen=True)
class Request:
    """What a stand-in read from one send request."""

    to: str
    subject: str
    text: str = ""
    html: str = ""
    tracking_id: str | None = None  # set when the sender chose the id (SendGrid's anymail_id)


class Refusal(Exception):
    """An answer other than acceptance: `status` and the provider's error body."""

    def __init__(self, status: int, body: dict):
        super().__init__(status)
        self.status, self.body = status, body


class EmailStandin(LoopbackServer):
    """The server and its state. Thread-safe: its HTTP threads and the test share it.

    A subclass names its `provider`, its `send_path` and implements `authorized`, `read`,
    `accepted`, `refusal`, `rejection`, `tracking_event`, `webhook_bodies` and `settings_at`.
    """

    provider = ""
    send_path = ""
    rejection_text = ""  # what the provider says of a rejected address

    def __init__(self, host: str = "127.0.0.1", port: int = 0, *, latency: float = 0.0):
        self.latency = latency  # seconds added to every send request
        self.in_flight = self.peak_in_flight = 0  # send requests being answered, now and at most
        self.mode = "ok"
        self.reject_addresses: set[str] = set()  # refused in every mode but 503
        self.delay = 0.0  # seconds, in "slow" mode
        self.messages: list[Received] = []
        self.refused: Counter = Counter()  # HTTP status -> requests answered with it
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), host, port)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/"

    # --- what it got ----------------------------------------------------------------------------
    def count(self, *, to: str | None = None, subject: str | None = None) -> int:
        """Messages accepted, to `to` and/or with `subject` when given."""
        with self._lock:
            return sum(
                1
                for m in self.messages
                if (to is None or m.to == to.lower()) and (subject is None or m.subject == subject)
            )

    def per_recipient_and_subject(self) -> Counter:
        with self._lock:
            return Counter((m.to, m.subject) for m in self.messages)

    def received(self) -> list[Received]:
        with self._lock:
            return list(self.messages)

    def receipts(self) -> Counter:
        """Receipts accepted, per recipient."""
        return Counter(m.to for m in self.received() if "receipt" in m.subject.lower())

    # --- answering ------------------------------------------------------------------------------
    def answer(self, body: bytes, headers) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) for one send request, `latency` seconds late."""
        with self._lock:
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            time.sleep(self.latency)
            return self._answer(body, headers)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _answer(self, body: bytes, headers) -> tuple[int, dict, dict]:
        try:
            if not self.authorized(headers):
                raise self.refusal(401)
            mode = self.mode
            if mode == "503":
                raise self.refusal(503)
            try:
                request = self.read(json.loads(body))
            except (ValueError, KeyError, IndexError, TypeError, AttributeError):
                raise self.refusal(400) from None
            if request.to in self.reject_addresses:
                raise self.rejection(request.to)
        except Refusal as refusal:
            with self._lock:
                self.refused[refusal.status] += 1
            return refusal.status, {}, refusal.body
        if mode == "slow":
            time.sleep(self.delay)
        message_id = self.new_message_id()
        message = Received(
            to=request.to,
            subject=request.subject,
            message_id=message_id,
            tracking_id=request.tracking_id or message_id,
            text=request.text,
            html=request.html,
        )
        with self._lock:
            self.messages.append(message)
        return self.accepted(message)

    def new_message_id(self) -> str:
        return secrets.token_urlsafe(16)

    @staticmethod
    def first_address(header: str) -> str:
        """The address of the first recipient of a To header ("Ada <ada@x>, …"), lower case."""
        return getaddresses([header])[0][1].lower()

    # --- provider specifics -------------------------------------------------------------------
    def authorized(self, headers) -> bool:
        raise NotImplementedError

    def read(self, data: dict) -> Request:
        raise NotImplementedError

    def accepted(self, message: Received) -> tuple[int, dict, dict]:
        raise NotImplementedError

    def refusal(self, status: int) -> Refusal:
        raise NotImplementedError

    def rejection(self, address: str) -> Refusal:
        raise NotImplementedError

    def tracking_event(
        self, message_id: str, recipient: str, kind: str, reason: str = "", **fields
    ) -> dict:
        """The provider's tracking event of `kind` (one of EVENT_KINDS) about a message, with
        the receiving server's `reason` (a bounce's SMTP answer) when given."""
        raise NotImplementedError

    def webhook_bodies(self, events: list[dict]) -> list[bytes]:
        """The request bodies the provider's tracking webhook would post for `events`."""
        raise NotImplementedError

    def settings(self) -> dict[str, str]:
        """The environment that points BimRide's settings at this stand-in."""
        return self.settings_at(self.port)

    @classmethod
    def settings_at(cls, port: int) -> dict[str, str]:
        """The environment that points BimRide's settings at this stand-in on `port`."""
        raise NotImplementedError

    # --- standalone -----------------------------------------------------------------------------
    def control(self, path: str, body: bytes) -> tuple[int, dict]:
        """The standalone control API: switch modes, read messages."""
        if path == "/_standin/messages":
            return 200, {
                "messages": [m.__dict__ for m in self.received()],
                "refused": dict(self.refused),
                "receipts": sum(self.receipts().values()),
                "latency": self.latency,
                "peak_in_flight": self.peak_in_flight,
            }
        if path == "/_standin/latency":
            try:
                seconds = float(json.loads(body or b"{}")["seconds"])
            except (KeyError, TypeError, ValueError) as error:
                return 400, {"error": f"seconds: a number >= 0 ({error})"}
            if not seconds >= 0:
                return 400, {"error": "seconds: a number >= 0"}
            self.latency = seconds
            return 200, {"latency": self.latency}
        if path == "/_standin/mode":
            data = json.loads(body or b"{}")
            if data.get("mode") not in MODES:
                return 400, {"error": f"mode must be one of {MODES}"}
            self.mode = data["mode"]
            self.delay = float(data.get("delay", self.delay))
            if "addresses" in data:
                self.reject_addresses = {a.lower() for a in data["addresses"]}
            return 200, {"mode": self.mode}
        return 404, {"error": "not found"}


def _handler_for(standin: EmailStandin) -> type[BaseHTTPRequestHandler]:
    def answer(path: str, body: bytes, headers):
        if path.rstrip("/") == standin.send_path.rstrip("/"):
            return standin.answer(body, headers)
        return None

    return json_handler(answer, standin.control)


def serve(standin_class: type[EmailStandin], default_port: int, doc: str) -> None:
    """`python -m devtools.<provider>_standin --port N`: run until Ctrl-C."""
    parser = argparse.ArgumentParser(description=doc.splitlines()[0])
    parser.add_argument("--port", type=int, default=default_port)
    parser.add_argument(
        "--latency",
        type=float,
        default=float(os.environ.get("EMAIL_STANDIN_LATENCY") or 0),
        help="seconds added to every send request (EMAIL_STANDIN_LATENCY; default 0)",
    )
    args = parser.parse_args()
    standin = standin_class(port=args.port, latency=args.latency)
    env = " ".join(f"{k}={v}" for k, v in standin.settings().items())
    standin.serve_until_interrupted(
        f"{standin.provider} stand-in at {standin.base_url} ({env}; latency"
        f" {args.latency:g}s); Ctrl-C stops it"
    )
