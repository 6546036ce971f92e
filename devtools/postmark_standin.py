"""A local stand-in for Postmark's email API and its tracking webhooks, for tests and offline
development.

anymail reaches it through its API URL setting (`EMAIL_PROVIDER=postmark`,
`POSTMARK_SERVER_TOKEN=test`, `POSTMARK_API_URL=http://127.0.0.1:<port>/`). It answers
`POST /email` as Postmark does: 200 with the `MessageID` its tracking events carry, 422 with
`ErrorCode` 300 for a rejected address, 401 without a server token, 503 during an outage. The
modes, the counting and the control API are `devtools.email_standin`'s.

In a test, use it in-process (`PostmarkStandin().start()`, then `.mode = "503"`). Standalone,
`python -m devtools.postmark_standin --port 8026` runs it until Ctrl-C.
"""

import json
import uuid
from datetime import UTC, datetime
from itertools import count

from devtools.email_standin import EmailStandin, Received, Refusal, Request, serve

# Tracking event kinds -> Postmark's record type and fields.
EVENTS = {
    "delivered": {"RecordType": "Delivery", "Details": "Test delivery webhook details"},
    "bounced": {
        "RecordType": "Bounce",
        "Type": "HardBounce",
        "TypeCode": 1,
        "Description": "The server was unable to deliver your message (unknown user).",
        "Inactive": True,
    },
    "blocked": {
        "RecordType": "Bounce",
        "Type": "SoftBounce",
        "TypeCode": 4096,
        "Description": "Unable to temporarily deliver this email.",
        "Inactive": False,
    },
    "complained": {
        "RecordType": "SpamComplaint",
        "Type": "SpamComplaint",
        "TypeCode": 512,
        "Inactive": True,
    },
    "opened": {"RecordType": "Open", "FirstOpen": True, "Platform": "WebMail"},
    "dropped": {
        "RecordType": "Bounce",
        "Type": "BadEmailAddress",
        "TypeCode": 100000,
        "Description": "Invalid email address.",
        "Inactive": False,
    },
}
TIME_FIELDS = {"Delivery": "DeliveredAt", "Bounce": "BouncedAt", "SpamComplaint": "BouncedAt"}
ERRORS = {
    400: (402, "Received invalid JSON input."),
    401: (10, "No Account or Server API tokens were supplied in the HTTP headers."),
    503: (0, "Service Unavailable"),  # an outage: Postmark's own status, not an API error code
}


class PostmarkStandin(EmailStandin):
    provider = "postmark"
    send_path = "/email"
    rejection_text = "Invalid 'To' address"
    _event_ids = count(1)

    @property
    def api_url(self) -> str:
        return self.base_url

    @classmethod
    def settings_at(cls, port: int) -> dict[str, str]:
        return {
            "EMAIL_PROVIDER": "postmark",
            "POSTMARK_SERVER_TOKEN": "test",
            "POSTMARK_API_URL": f"http://127.0.0.1:{port}/",
        }

    def authorized(self, headers) -> bool:
        return bool(headers.get("X-Postmark-Server-Token", ""))

    def read(self, data: dict) -> Request:
        return Request(
            to=self.first_address(data["To"]),
            subject=data.get("Subject", ""),
            text=data.get("TextBody", ""),
            html=data.get("HtmlBody", ""),
        )

    def new_message_id(self) -> str:
        return str(uuid.uuid4())

    def accepted(self, message: Received) -> tuple[int, dict, dict]:
        return (
            200,
            {},
            {
                "To": message.to,
                "SubmittedAt": _now(),
                "MessageID": message.message_id,
                "ErrorCode": 0,
                "Message": "OK",
            },
        )

    def refusal(self, status: int) -> Refusal:
        code, message = ERRORS.get(status, (0, "Service Unavailable"))
        return Refusal(422 if status == 400 else status, {"ErrorCode": code, "Message": message})

    def rejection(self, address: str) -> Refusal:
        message = f"{self.rejection_text}: '{address}'."
        return Refusal(422, {"ErrorCode": 300, "Message": message})

    def tracking_event(
        self, message_id: str, recipient: str, kind: str, reason: str = "", **fields
    ) -> dict:
        event = {
            "MessageID": message_id,
            "Recipient": recipient,
            "Email": recipient,
            "MessageStream": "outbound",
            "Tag": "receipt",
            "Metadata": {},
            "ServerID": 1,
            **EVENTS[kind],
        }
        event[TIME_FIELDS.get(event["RecordType"], "ReceivedAt")] = _now()
        if event["RecordType"] in ("Bounce", "SpamComplaint"):
            event["ID"] = next(self._event_ids)
        if reason:
            event["Details"] = reason
        return event | fields

    def webhook_bodies(self, events: list[dict]) -> list[bytes]:
        return [json.dumps(event).encode() for event in events]  # Postmark posts one at a time


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


if __name__ == "__main__":
    serve(PostmarkStandin, 8026, __doc__)
