from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from anymail.signals import tracking

        from notifications.webhooks import on_tracking

        tracking.connect(on_tracking, dispatch_uid="notifications.on_tracking")
