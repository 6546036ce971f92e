"""The provider's tracking webhook: anymail's SendGrid view behind HTTP basic auth.

anymail answers a failed basic-auth check with 400 and, with no secret configured, accepts
anyone. Here a missing or wrong password is a 401 challenge and an unconfigured secret closes
the webhook (403), so tracking events never come from just anyone.
"""

import logging

from anymail.exceptions import AnymailWebhookValidationFailure
from anymail.signals import AnymailTrackingEvent
from anymail.webhooks.sendgrid import SendGridTrackingWebhookView
from django.http import JsonResponse

from bimride.api import error_body
from notifications import services

logger = logging.getLogger(__name__)


class TrackingWebhookView(SendGridTrackingWebhookView):
    """SendGrid's event webhook: delivery, bounce, complaint and the rest, to the log."""

    def post(self, request, *args, **kwargs):
        if not self.basic_auth:
            message = "The webhook is closed: ANYMAIL_WEBHOOK_SECRET is not set."
            return JsonResponse(error_body("webhook_disabled", message), status=403)
        try:
            self.run_validators(request)
        except AnymailWebhookValidationFailure:
            response = JsonResponse(
                error_body("not_authenticated", "Basic authentication is required."), status=401
            )
            response["WWW-Authenticate"] = 'Basic realm="BimRide webhooks"'
            return response
        return super().post(request, *args, **kwargs)


def on_tracking(sender, event: AnymailTrackingEvent, esp_name: str, **kwargs) -> None:
    """Receiver of anymail's `tracking` signal (connected in NotificationsConfig.ready)."""
    services.notification_track(event=event)
