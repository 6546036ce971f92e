"""Email and pushes: the email provider (anymail's Postmark or SendGrid backend, the console in
development) and Firebase Cloud Messaging for pushes."""

import warnings

from django.core.exceptions import ImproperlyConfigured

from bimride.settings.env import BASE_DIR, PRODUCTION, env

# The provider is a setting, EMAIL_PROVIDER: Postmark by default (anymail tests it upstream; why
# in docs/api.md), or SendGrid (anymail still ships it, untested upstream since 13.0.1). Sending
# goes through the provider's anymail backend once its credentials are set; without them,
# development uses EMAIL_BACKEND (the console by default, so it works offline; `make run` starts
# the provider's stand-in and gives its processes the stand-in's credentials).
# <PROVIDER>_API_URL points anymail at a stand-in in tests and benchmarks.
EMAIL_PROVIDERS = {  # provider -> (anymail backend, the variables it needs besides the secret)
    "postmark": ("anymail.backends.postmark.EmailBackend", ("POSTMARK_SERVER_TOKEN",)),
    "sendgrid": ("anymail.backends.sendgrid.EmailBackend", ("SENDGRID_API_KEY",)),
}
EMAIL_PROVIDER = env.str("EMAIL_PROVIDER", "").strip().lower() or "postmark"
if EMAIL_PROVIDER not in EMAIL_PROVIDERS:
    raise ImproperlyConfigured(
        f"EMAIL_PROVIDER={EMAIL_PROVIDER!r} is not one of: " + ", ".join(EMAIL_PROVIDERS)
    )
_email_backend, _email_credentials = EMAIL_PROVIDERS[EMAIL_PROVIDER]
_email_secrets = {
    "POSTMARK_SERVER_TOKEN": env.str("POSTMARK_SERVER_TOKEN", ""),
    "SENDGRID_API_KEY": env.str("SENDGRID_API_KEY", ""),
    # "user:password" of the tracking webhooks' basic auth; unset, the webhooks refuse all.
    "ANYMAIL_WEBHOOK_SECRET": env.str("ANYMAIL_WEBHOOK_SECRET", ""),
}
_email_missing = [
    name for name in (*_email_credentials, "ANYMAIL_WEBHOOK_SECRET") if not _email_secrets[name]
]
if PRODUCTION and _email_missing:
    raise ImproperlyConfigured(
        f"DJANGO_ENV=production with EMAIL_PROVIDER={EMAIL_PROVIDER} needs these environment "
        "variables: " + ", ".join(_email_missing)
    )
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", "BimRide <rides@bimride.example>")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
if all(_email_secrets[name] for name in _email_credentials):
    EMAIL_BACKEND = _email_backend
else:
    EMAIL_BACKEND = env.str("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
if EMAIL_PROVIDER == "sendgrid":
    # Chosen knowingly (docs/api.md states anymail's status for SendGrid): its notice that
    # anymail "has dropped official support for SendGrid" is a system check and a warning from
    # every backend and webhook instance; said once in docs/api.md, not by every process.
    SILENCED_SYSTEM_CHECKS = ["anymail.W003"]
    warnings.filterwarnings(
        "ignore", message="django-anymail has dropped official support for SendGrid"
    )
EMAIL_FILE_PATH = env.str("EMAIL_FILE_PATH", str(BASE_DIR / ".data" / "emails"))
ANYMAIL = {
    "POSTMARK_SERVER_TOKEN": _email_secrets["POSTMARK_SERVER_TOKEN"],
    "POSTMARK_API_URL": env.str("POSTMARK_API_URL", "https://api.postmarkapp.com/"),
    # Postmark's transactional stream: receipts never share a reputation with broadcasts.
    "POSTMARK_MESSAGE_STREAM": env.str("POSTMARK_MESSAGE_STREAM", "outbound"),
    "SENDGRID_API_KEY": _email_secrets["SENDGRID_API_KEY"],
    "SENDGRID_API_URL": env.str("SENDGRID_API_URL", "https://api.sendgrid.com/v3/"),
    # (connect, read) seconds: well inside the email jobs' 30 s timeout, so a hung provider is
    # a failed attempt to retry, not a killed worker.
    "REQUESTS_TIMEOUT": (
        env.float("EMAIL_CONNECT_TIMEOUT", 5.0),
        env.float("EMAIL_READ_TIMEOUT", 10.0),
    ),
    "WEBHOOK_SECRET": _email_secrets["ANYMAIL_WEBHOOK_SECRET"],
}

# --- Pushes -------------------------------------------------------------------------------------
# Firebase Cloud Messaging's HTTP v1 API (notifications/fcm.py), authorised by a service
# account's JSON key: FCM_CREDENTIALS_FILE (a path) or FCM_CREDENTIALS_JSON (the key itself).
# Without one, no push is sent (the events' push jobs say so). `make run` generates a key whose
# token_uri is the loopback stand-in's and points FCM_API_BASE at it (devtools/fcm_standin.py).
FCM_CREDENTIALS_FILE = env.str("FCM_CREDENTIALS_FILE", "")
FCM_CREDENTIALS_JSON = env.str("FCM_CREDENTIALS_JSON", "")
FCM_PROJECT_ID = env.str("FCM_PROJECT_ID", "")  # default: the key's project_id
FCM_API_BASE = env.str("FCM_API_BASE", "https://fcm.googleapis.com")
# (connect, read) seconds: well inside the push job's 30 s timeout, so a slow FCM is a retry.
FCM_TIMEOUT = (env.float("FCM_CONNECT_TIMEOUT", 5.0), env.float("FCM_READ_TIMEOUT", 10.0))
PUSH_DEVICE_MAX_IDLE_DAYS = env.int("PUSH_DEVICE_MAX_IDLE_DAYS", 60)  # then pruned, daily
PUSH_ETA_SPEED_KMH = env.float("PUSH_ETA_SPEED_KMH", 25.0)  # "driver assigned"'s ETA in town
