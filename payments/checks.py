"""`manage.py check --deploy`: says why the Stripe webhook refuses everything, or would accept
what anyone can sign."""

from django.conf import settings
from django.core import checks


@checks.register(checks.Tags.security, deploy=True)
def stripe_webhook_secret(app_configs, **kwargs) -> list[checks.CheckMessage]:
    secret = settings.STRIPE_WEBHOOK_SECRET
    hint = "Set STRIPE_WEBHOOK_SECRET to the signing secret of the endpoint in Stripe's dashboard."
    if not secret:
        message = (
            "STRIPE_WEBHOOK_SECRET is not set: the Stripe webhook is closed and answers every "
            "request 401, so payment events are lost."
        )
        return [checks.Warning(message, hint=hint, id="payments.W001")]
    if secret == settings.STRIPE_WEBHOOK_DEVELOPMENT_SECRET:
        message = (
            "STRIPE_WEBHOOK_SECRET is the development default: anyone who read the code can sign "
            "webhook events."
        )
        return [checks.Warning(message, hint=hint, id="payments.W002")]
    return []
