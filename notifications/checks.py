"""`manage.py check --deploy`: says why the email tracking webhook refuses everything."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def tracking_webhook_secret(app_configs, **kwargs) -> list[checks.CheckMessage]:
    if settings.ANYMAIL.get("WEBHOOK_SECRET"):
        return []
    return [
        checks.Warning(
            "ANYMAIL_WEBHOOK_SECRET is not set: the email tracking webhook is closed and answers "
            "every request 401, so delivery, bounce and complaint events are lost.",
            hint="Set ANYMAIL_WEBHOOK_SECRET to the user:password the provider's webhook uses.",
            id="notifications.W001",
        )
    ]
