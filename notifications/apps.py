from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from anymail.signals import tracking

        from notifications import checks  # noqa: F401 - registers the deploy checks
        from notifications.tasks import expect_receipt
        from notifications.webhooks import on_tracking
        from rides.signals import ride_completing

        tracking.connect(on_tracking, dispatch_uid="notifications.on_tracking")
        ride_completing.connect(expect_receipt, dispatch_uid="notifications.expect_receipt")
