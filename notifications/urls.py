"""Provider webhooks, mounted at /webhooks/anymail/ (the path anymail's docs give)."""

from django.urls import path

from notifications.webhooks import TrackingWebhookView

app_name = "notifications"
urlpatterns = [
    path("sendgrid/tracking/", TrackingWebhookView.as_view(), name="sendgrid_tracking_webhook"),
]
