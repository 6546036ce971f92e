"""A local stand-in for SendGrid's v3 mail-send API, for tests and offline development.

anymail reaches it through its API URL setting (`SENDGRID_API_KEY=test`,
`SENDGRID_API_URL=http://127.0.0.1:<port>/v3/`). It listens on loopback only and answers
`POST /v3/mail/send` as SendGrid does: 202 with an `X-Message-Id` header, 400 with an
`{"errors": [...]}` body for a rejected address, 503 during an outage. It counts the messages it
accepted per recipient and subject.

In a test, use it in-process (`SendGridStandin().start()`, then `.mode = "503"`). Standalone,
`python -m devtools.sendgrid_standin --port 8025` runs it until Ctrl-C; switch it with
`POST /_standin/mode {"mode": "503"}` (or "ok", "slow" with "delay", "reject" with "addresses")
and read what it got from `GET /_standin/messages`.
"""

import argparse
import json
import secrets
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler

from devtools.loopback import LoopbackServer, QuietHandler

MODES = ("ok", "503", "reject", "slow")


@dataclass
class Received:
    """One message the stand-in accepted."""

    to: str
    subject: str
    message_id: str  # the X-Message-Id it answered
    anymail_id: str | None  # the id anymail put in custom_args, the one tracking events carry
    text: str = ""
    html: str = ""
    at: float = field(default_factory=time.time)


class SendGridStandin(LoopbackServer):
    """The server and its state. Thread-safe: its HTTP threads and the test share it."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0):
        self.mode = "ok"
        self.reject_addresses: set[str] = set()  # refused with 400 in every mode but 503
        self.delay = 0.0  # seconds, in "slow" mode
        self.messages: list[Received] = []
        self.refused: Counter = Counter()  # HTTP status -> requests answered with it
        self._lock = threading.Lock()
        super().__init__(_handler_for(self), host, port)

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v3/"

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

    # --- answering ------------------------------------------------------------------------------
    def answer(self, body: bytes, authorization: str) -> tuple[int, dict, dict]:
        """(status, headers, JSON body) for one mail-send request."""
        if not authorization.startswith("Bearer ") or len(authorization) <= len("Bearer "):
            return self._refuse(401, "The provided authorization grant is invalid.", None)
        mode = self.mode
        if mode == "503":
            return self._refuse(503, "Service Unavailable", None)
        try:
            data = json.loads(body)
            personalization = data["personalizations"][0]
            to = personalization["to"][0]["email"].lower()
            subject = data.get("subject") or personalization.get("subject", "")
        except (ValueError, KeyError, IndexError, TypeError):
            return self._refuse(400, "Bad Request", None)
        if to in self.reject_addresses:
            return self._refuse(400, "Does not contain a valid address.", "personalizations.0.to")
        if mode == "slow":
            time.sleep(self.delay)
        content = {c.get("type"): c.get("value", "") for c in data.get("content", [])}
        message = Received(
            to=to,
            subject=subject,
            message_id=secrets.token_urlsafe(16),
            anymail_id=personalization.get("custom_args", {}).get("anymail_id"),
            text=content.get("text/plain", ""),
            html=content.get("text/html", ""),
        )
        with self._lock:
            self.messages.append(message)
        return 202, {"X-Message-Id": message.message_id}, {}

    def _refuse(self, status: int, message: str, field_name: str | None) -> tuple[int, dict, dict]:
        with self._lock:
            self.refused[status] += 1
        return status, {}, {"errors": [{"message": message, "field": field_name, "help": None}]}

    def control(self, path: str, body: bytes) -> tuple[int, dict]:
        """The standalone control API: switch modes, read messages."""
        if path == "/_standin/messages":
            return 200, {
                "messages": [m.__dict__ for m in self.received()],
                "refused": dict(self.refused),
            }
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


def _handler_for(standin: SendGridStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.rstrip("/") == "/v3/mail/send":
                status, headers, data = standin.answer(body, self.headers.get("Authorization", ""))
            elif self.path.startswith("/_standin/"):
                status, data = standin.control(self.path, body)
                headers = {}
            else:
                status, headers, data = 404, {}, {"errors": [{"message": "Not found"}]}
            self._send(status, headers, data)

        def do_GET(self) -> None:  # noqa: N802
            status, data = standin.control(self.path, b"")
            self._send(status, {}, data)

        def _send(self, status: int, headers: dict, data: dict) -> None:
            payload = json.dumps(data, default=str).encode() if data else b""
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8025)
    args = parser.parse_args()
    standin = SendGridStandin(port=args.port)
    standin.serve_until_interrupted(
        f"SendGrid stand-in at {standin.api_url} (SENDGRID_API_URL); Ctrl-C stops it"
    )


if __name__ == "__main__":
    main()
