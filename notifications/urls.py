"""Provider webhooks, mounted at /webhooks/anymail/ (the paths anymail's docs give)."""

from django.urls import path

from notifications.webhooks import PostmarkTrackingView, SendGridTrackingView, tracking_webhook

app_name = "notifications"
urlpatterns = [
    path(
        "postmark/tracking/",
        tracking_webhook("postmark", PostmarkTrackingView),
        name="postmark_tracking_webhook",
    ),
    path(
        "sendgrid/tracking/",
        tracking_webhook("sendgrid", SendGridTrackingView),
        name="sendgrid_tracking_webhook",
    ),
]
