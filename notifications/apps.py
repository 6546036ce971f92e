from django.apps import AppConfig


class NotificationsConfig(AppConfig):
    name = "notifications"

    def ready(self) -> None:
        from anymail.signals import tracking
        from django.urls import reverse_lazy

        from bimride.jobs import panel
        from notifications import checks  # noqa: F401 - registers the deploy checks
        from notifications.selectors import push_counts
        from notifications.webhooks import on_tracking

        tracking.connect(on_tracking, dispatch_uid="notifications.on_tracking")
        panel(
            "Pushes by outcome, last 24 hours",
            ["kind", "outcome", "pushes"],
            lambda: push_counts(hours=24),
            link=reverse_lazy("admin:notifications_push_changelist"),
        )
