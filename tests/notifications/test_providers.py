"""The email provider as a setting: production refuses a provider without its credentials or
webhook secret, naming them; and no process repeats anymail's notice that it no longer supports
SendGrid, with the default provider (where nothing emits it) or with SendGrid chosen."""

import os
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
NOTICE = "dropped official support for SendGrid"
PRODUCTION = {
    "DJANGO_ENV": "production",
    "SECRET_KEY": secrets.token_urlsafe(50),
    "ALLOWED_HOSTS": "api.bimride.example",
    "STRIPE_API_KEY": "sk_live_example",
    "STRIPE_WEBHOOK_SECRET": "whsec_example",
}
CREDENTIALS = {
    "postmark": {"POSTMARK_SERVER_TOKEN": "pm-server-token"},
    "sendgrid": {"SENDGRID_API_KEY": "SG.test"},
}
EMAIL_VARIABLES = (
    "EMAIL_PROVIDER", "EMAIL_BACKEND", "POSTMARK_SERVER_TOKEN", "SENDGRID_API_KEY",
    "ANYMAIL_WEBHOOK_SECRET", "PYTHONWARNINGS",
)  # fmt: skip

# What a web process and a worker do with email: open the chosen provider's anymail backend
# and serve its tracking webhook (the view is instantiated per request, anymail's warning with it).
USE_EMAIL = """
from django.conf import settings
from django.core.mail import get_connection
from django.test import Client
get_connection().open()
Client().post(f"/webhooks/anymail/{settings.EMAIL_PROVIDER}/tracking/", "[]", "application/json")
print("used", settings.EMAIL_BACKEND)
"""


def manage(*args: str, **env: str) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in EMAIL_VARIABLES}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("provider", "given", "missing"),
    [
        ("", {}, "POSTMARK_SERVER_TOKEN, ANYMAIL_WEBHOOK_SECRET"),
        ("postmark", {"POSTMARK_SERVER_TOKEN": "t"}, "ANYMAIL_WEBHOOK_SECRET"),
        ("postmark", {"ANYMAIL_WEBHOOK_SECRET": "a:b", "SENDGRID_API_KEY": "k"},
         "POSTMARK_SERVER_TOKEN"),
        ("sendgrid", {"ANYMAIL_WEBHOOK_SECRET": "a:b"}, "SENDGRID_API_KEY"),
    ],
)  # fmt: skip
def test_production_refuses_a_provider_without_its_credentials_naming_them(
    provider, given, missing
):
    result = manage("check", **PRODUCTION, **given, EMAIL_PROVIDER=provider)
    assert result.returncode != 0
    chosen = provider or "postmark"
    expected = f"DJANGO_ENV=production with EMAIL_PROVIDER={chosen} needs these environment"
    assert f"{expected} variables: {missing}" in result.stderr


def test_an_unknown_provider_is_refused():
    result = manage("check", EMAIL_PROVIDER="mailchimp")
    assert result.returncode != 0
    assert "EMAIL_PROVIDER='mailchimp' is not one of: postmark, sendgrid" in result.stderr


@pytest.mark.parametrize("provider", ["postmark", "sendgrid"])
def test_production_with_either_provider_passes_the_deployment_checks_without_the_notice(
    provider,
):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        **PRODUCTION,
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgresql://u@localhost/db"),
        EMAIL_PROVIDER=provider,
        ANYMAIL_WEBHOOK_SECRET="hooks:secret",
        **CREDENTIALS[provider],
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "System check identified no issues" in result.stdout
    assert NOTICE not in result.stdout + result.stderr


@pytest.mark.parametrize("provider", ["", "sendgrid"])
def test_a_process_using_email_never_prints_the_sendgrid_notice(provider):
    env = {"EMAIL_PROVIDER": provider} if provider else {}  # "": the default settings
    name = provider or "postmark"
    result = manage("shell", "-c", USE_EMAIL, PYTHONWARNINGS="default", **env, **CREDENTIALS[name])
    assert result.returncode == 0, result.stderr
    assert f"used anymail.backends.{name}.EmailBackend" in result.stdout
    assert NOTICE not in result.stdout + result.stderr


def test_the_notice_would_show_in_that_output_were_it_not_silenced():
    """The control: with the default settings, anymail's SendGrid backend does print it."""
    code = "from anymail.backends.sendgrid import EmailBackend; EmailBackend(api_key='k')"
    result = manage("shell", "-c", code)
    assert result.returncode == 0, result.stderr
    assert NOTICE in result.stdout + result.stderr
