"""The providers' tracking webhooks: anymail's views behind HTTP basic auth, one per provider.

Each provider posts to its own URL (`/webhooks/anymail/<provider>/tracking/`), and only the
chosen provider's (EMAIL_PROVIDER) is open: another answers 404 and is never instantiated, so
an unused provider's anymail view never runs (nor warns). Postmark and SendGrid sign nothing
that anymail checks by default; anymail verifies both by basic auth. It answers a failed check
with 400 and, with no secret configured, accepts anyone. Here a missing or wrong password is a
401 challenge, and so is every request while no secret is configured (the webhook is closed: the
log and `check --deploy` say why), so tracking events never come from just anyone.
"""

import logging

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent
from anymail.webhooks.postmark import PostmarkTrackingWebhookView
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.conf import settings
from django.http import JsonResponse
from django.views.decorators.csrf import csrf_exempt

from bimride.api import error_body
from notifications import services

logger = logging.getLogger(__name__)


def basic_challenge(code: str, message: str) -> JsonResponse:
    response = JsonResponse(error_body(code, message), status=401)
    response["WWW-Authenticate"] = 'Basic realm="BimRide webhooks"'
    return response


class BasicAuthRequired:
    """Refuse a tracking event without the webhook secret, before anymail parses it."""

    def post(self, request, *args, **kwargs):
        if not self.basic_auth:
            logger.warning(
                "email tracking webhook refused a request: it is closed because "
                "ANYMAIL_WEBHOOK_SECRET is not set"
            )
            message = "The webhook is closed: ANYMAIL_WEBHOOK_SECRET is not set."
            return basic_challenge("webhook_closed", message)
        try:
            self.run_validators(request)
        except AnymailWebhookValidationFailure:
            return basic_challenge("not_authenticated", "Basic authentication is required.")
        return super().post(request, *args, **kwargs)


class PostmarkTrackingView(BasicAuthRequired, PostmarkTrackingWebhookView):
    """Postmark's webhook: Delivery, Bounce, SpamComplaint, Open, one event a request."""


class SendGridTrackingView(BasicAuthRequired, SendGridTrackingWebhookView):
    """SendGrid's event webhook: delivered, bounce, spamreport, open and the rest, in batches."""


ERROR = {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}
EVENTS = {  # what each provider posts: Postmark one event a request, SendGrid a batch
    "postmark": {"type": "object"},
    "sendgrid": {"type": "array", "items": {"type": "object"}},
}


def tracking_schema(provider: str) -> dict | None:
    """The webhook's entry in /api/schema/ (bimride.schema.webhook_operations): only the chosen
    provider's, the one that is open."""
    if provider != settings.EMAIL_PROVIDER:
        return None
    return {
        "operationId": "webhooks_email_tracking",
        "summary": f"The email provider's tracking webhook (called by {provider}, not by apps)",
        "description": (
            f"{provider} posts delivery, bounce, complaint and open events with HTTP basic auth "
            "(ANYMAIL_WEBHOOK_SECRET); each updates the notification log."
        ),
        "security": [{"webhookBasicAuth": []}],
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": EVENTS[provider]}},
        },
        "responses": {
            "200": {"description": "Events received."},
            "401": {
                "description": (
                    "Not authenticated. Codes: `not_authenticated`: the basic auth is missing or "
                    "wrong; `webhook_closed`: no secret is configured, so nothing is accepted."
                ),
                "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
                "content": ERROR,
            },
            "503": {
                "description": "Service unavailable. Codes: `unavailable`.",
                "headers": {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
                "content": ERROR,
            },
        },
    }


def tracking_webhook(provider: str, view_class: type):
    """The view of `provider`'s webhook: anymail's, while `provider` is the chosen one."""
    view = view_class.as_view()

    @csrf_exempt
    def webhook(request, *args, **kwargs):
        if provider != settings.EMAIL_PROVIDER:
            message = f"Email goes through {settings.EMAIL_PROVIDER}, not {provider}."
            return JsonResponse(error_body("not_found", message), status=404)
        return view(request, *args, **kwargs)

    webhook.webhook_schema = lambda: tracking_schema(provider)
    return webhook


def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """Receiver of anymail's `tracking` signal (connected in NotificationsConfig.ready)."""
    services.notification_track(event=event, esp_name=esp_name)
