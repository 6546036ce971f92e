"""A local stand-in for SendGrid's v3 mail-send API and its event webhook, for tests and offline
development.

anymail reaches it through its API URL setting (`EMAIL_PROVIDER=sendgrid`,
`SENDGRID_API_KEY=test`, `SENDGRID_API_URL=http://127.0.0.1:<port>/v3/`). It answers
`POST /v3/mail/send` as SendGrid does: 202 with an `X-Message-Id` header, 400 with an
`{"errors": [...]}` body for a rejected address, 503 during an outage. The modes, the counting
and the control API are `devtools.email_standin`'s.

In a test, use it in-process (`SendGridStandin().start()`, then `.mode = "503"`). Standalone,
`python -m devtools.sendgrid_standin --port 8025` runs it until Ctrl-C.
"""

import json
import secrets
import time

from devtools.email_standin import EmailStandin, Received, Refusal, Request, serve

# Tracking event kinds -> SendGrid's event fields.
EVENTS = {
    "delivered": {"event": "delivered"},
    "bounced": {"event": "bounce", "type": "bounce", "status": "5.1.1"},
    "blocked": {"event": "bounce", "type": "blocked", "status": "4.0.0"},
    "complained": {"event": "spamreport"},
    "opened": {"event": "open"},
    "dropped": {"event": "dropped", "reason": "Invalid"},
}
ERRORS = {400: "Bad Request", 401: "The provided authorization grant is invalid."}


class SendGridStandin(EmailStandin):
    provider = "sendgrid"
    send_path = "/v3/mail/send"
    rejection_text = "Does not contain a valid address."

    @property
    def api_url(self) -> str:
        return f"{self.base_url}v3/"

    @classmethod
    def settings_at(cls, port: int) -> dict[str, str]:
        return {
            "EMAIL_PROVIDER": "sendgrid",
            "SENDGRID_API_KEY": "test",
            "SENDGRID_API_URL": f"http://127.0.0.1:{port}/v3/",
        }

    def authorized(self, headers) -> bool:
        authorization = headers.get("Authorization", "")
        return authorization.startswith("Bearer ") and len(authorization) > len("Bearer ")

    def read(self, data: dict) -> Request:
        personalization = data["personalizations"][0]
        content = {c.get("type"): c.get("value", "") for c in data.get("content", [])}
        return Request(
            to=personalization["to"][0]["email"].lower(),
            subject=data.get("subject") or personalization.get("subject", ""),
            text=content.get("text/plain", ""),
            html=content.get("text/html", ""),
            # anymail puts its own id in custom_args: the one tracking events carry back
            tracking_id=personalization.get("custom_args", {}).get("anymail_id"),
        )

    def accepted(self, message: Received) -> tuple[int, dict, dict]:
        return 202, {"X-Message-Id": message.message_id}, {}

    def refusal(self, status: int) -> Refusal:
        return _error(status, ERRORS.get(status, "Service Unavailable"), None)

    def rejection(self, address: str) -> Refusal:
        return _error(400, self.rejection_text, "personalizations.0.to")

    def tracking_event(
        self, message_id: str, recipient: str, kind: str, reason: str = "", **fields
    ) -> dict:
        return {
            "email": recipient,
            "timestamp": int(time.time()),
            "anymail_id": message_id,
            "sg_event_id": secrets.token_urlsafe(12),
            "sg_message_id": "sg.1",
            **EVENTS[kind],
            **({"reason": reason} if reason else {}),
            **fields,
        }

    def webhook_bodies(self, events: list[dict]) -> list[bytes]:
        return [json.dumps(events).encode()]  # SendGrid posts events in batches


def _error(status: int, message: str, field_name: str | None) -> Refusal:
    return Refusal(status, {"errors": [{"message": message, "field": field_name, "help": None}]})


if __name__ == "__main__":
    serve(SendGridStandin, 8025, __doc__)
