"""`make run`: migrate, seed demo data, ensure an admin, then run web + one worker per queue.

Usage: ``python -m devtools.run`` (with DATABASE_URL set, as `make run` does).

Without STRIPE_API_KEY it also runs the Stripe stand-in on STRIPE_API_BASE's port, keeping its
objects in `.data/stripe-standin.json` (STRIPE_STANDIN_STATE) across runs. Without the email
provider's credentials (and no EMAIL_BACKEND of one's own) it runs that provider's stand-in on
EMAIL_STANDIN_PORT (8025) and the web and workers send through the real anymail backend to it.
The stand-ins answer at once unless STRIPE_STANDIN_LATENCY, STRIPE_STANDIN_RATE or
EMAIL_STANDIN_LATENCY (inherited by them) make them as slow as the providers.
Without FCM credentials it runs the FCM stand-in on FCM_STANDIN_PORT (8027), with a service
account key of its own in `.data/`, and the workers push to it through the real FCM client.
The children run in their own sessions, so a terminal Ctrl-C reaches only this process, which
stops them once with `devtools.supervisor.stop_all`.
"""

import os
import secrets
import signal
import sys
import time
from pathlib import Path
from urllib.parse import urlsplit

from devtools.email_standin import EmailStandin
from devtools.fcm_standin import ensure_key_file
from devtools.postmark_standin import PostmarkStandin
from devtools.sendgrid_standin import SendGridStandin
from devtools.supervisor import ROOT, STOP_GRACE, Process, stop_all

EMAIL_STANDINS: dict[str, type[EmailStandin]] = {
    standin.provider: standin for standin in (PostmarkStandin, SendGridStandin)
}

DEFAULT_ADMIN_EMAIL = "admin@bimride.example"
STANDIN_STATE = ROOT / ".data" / "stripe-standin.json"
FCM_STANDIN_KEY = ROOT / ".data" / "fcm-standin-service-account.json"


def say(message: str) -> None:
    print(f"run: {message}", flush=True)


def prepare() -> str:
    """Migrate, seed the demo data and ensure the admin; return the admin's email."""
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connections

    say("migrating the database")
    call_command("migrate", interactive=False, verbosity=0)
    if settings.PRODUCTION:
        call_command("collectstatic", interactive=False, verbosity=0)
    say("seeding demo data")
    call_command("seed_demo")
    email = ensure_admin()
    say(two_factor_hint(email))
    connections.close_all()  # the children open their own
    return email


def ensure_admin() -> str:
    """Create the superuser ADMIN_EMAIL, or give it ADMIN_PASSWORD when that is set."""
    from django.contrib.auth import get_user_model
    from django.db import transaction

    email = os.environ.get("ADMIN_EMAIL", DEFAULT_ADMIN_EMAIL).strip().lower()
    password = os.environ.get("ADMIN_PASSWORD", "")
    User = get_user_model()
    with transaction.atomic():
        user = User.objects.select_for_update().filter(username=email).first()
        if user is None:
            generated = secrets.token_urlsafe(12) if not password else ""
            User.objects.create_superuser(
                username=email, email=email, password=password or generated
            )
            say(f"created admin {email}")
            if generated:
                say(f"admin password: {generated}  (shown once; ADMIN_PASSWORD sets it)")
        elif password:
            user.set_password(password)
            user.is_staff = user.is_superuser = user.is_active = True
            user.save()
            say(f"admin {email}: password set from ADMIN_PASSWORD")
        else:
            say(f"admin {email} exists; password unchanged (ADMIN_PASSWORD changes it)")
    return email


def two_factor_hint(email: str) -> str:
    """How the admin signs in: with its authenticator's code, or how to set one up."""
    from django.conf import settings
    from django.contrib.auth import get_user_model

    from bimride.access.otp import has_authenticator

    if has_authenticator(get_user_model().objects.get(username=email)):
        return f"admin {email} signs in with the code from its authenticator app"
    when = "required now" if settings.STAFF_OTP_REQUIRED else "required with DJANGO_ENV=production"
    return (
        f"admin {email} has no second factor yet ({when}): sign in, then follow the banner or"
        " open /admin/access/enrol/ and scan the QR code with an authenticator app"
    )


def commands(port: str) -> dict[str, tuple[list[str], dict[str, str]]]:
    """Name -> (command, extra environment) of every child: web, workers, the stand-in."""
    from django.conf import settings

    py, manage = sys.executable, [sys.executable, "manage.py"]
    email = email_standin()
    email_env = email[1] if email else {}
    push = fcm_standin()
    email_env = email_env | (push[1] if push else {})  # what web and workers are given
    if settings.PRODUCTION:
        web = [py, "-m", "gunicorn", "bimride.wsgi", "-b", f"0.0.0.0:{port}", "-w", "2"]
        found = {"web (gunicorn)": (web, email_env)}
    else:
        web = [*manage, "runserver", f"0.0.0.0:{port}", "--noreload"]
        found = {"web (runserver)": (web, email_env)}
    for queue in settings.JOB_QUEUES:
        found[f"worker {queue}"] = ([*manage, "qcluster"], {"Q_CLUSTER_NAME": queue, **email_env})
    if email:
        found[f"{settings.EMAIL_PROVIDER} stand-in"] = (email[0], {})
    if push:
        found["FCM stand-in"] = (push[0], {})
    if settings.STRIPE_USES_STANDIN:  # no STRIPE_API_KEY: payments talk to a local stand-in
        stripe_port = str(urlsplit(settings.STRIPE_API_BASE).port or 12111)
        state = os.environ.get("STRIPE_STANDIN_STATE") or str(STANDIN_STATE)
        standin = [py, "-m", "devtools.stripe_standin", "--port", stripe_port, "--state", state]
        found["Stripe stand-in"] = (standin, {})
        say(f"STRIPE_API_KEY is unset: payments use the Stripe stand-in on {stripe_port}")
    return found


def email_standin() -> tuple[list[str], dict[str, str]] | None:
    """The command of the email provider's stand-in and the environment that sends email to it,
    when the provider's credentials are unset and EMAIL_BACKEND names no backend of one's own."""
    from django.conf import settings

    provider_backend = settings.EMAIL_PROVIDERS[settings.EMAIL_PROVIDER][0]
    if provider_backend == settings.EMAIL_BACKEND or os.environ.get("EMAIL_BACKEND"):
        return None
    standin = EMAIL_STANDINS[settings.EMAIL_PROVIDER]
    port = int(os.environ.get("EMAIL_STANDIN_PORT") or 8025)
    say(f"{settings.EMAIL_PROVIDER} credentials are unset: email goes to its stand-in on {port}")
    return [sys.executable, "-m", standin.__module__, "--port", str(port)], standin.settings_at(
        port
    )


def fcm_standin() -> tuple[list[str], dict[str, str]] | None:
    """The command of the FCM stand-in and the environment that sends pushes to it, when no
    service account key is set (FCM_CREDENTIALS_FILE / FCM_CREDENTIALS_JSON)."""
    from django.conf import settings

    if settings.FCM_CREDENTIALS_FILE or settings.FCM_CREDENTIALS_JSON:
        return None
    port = int(os.environ.get("FCM_STANDIN_PORT") or 8027)
    key = ensure_key_file(Path(os.environ.get("FCM_STANDIN_KEY") or FCM_STANDIN_KEY), port)
    say(f"FCM credentials are unset: pushes go to the FCM stand-in on {port}")
    say(f"pushes sent: curl http://127.0.0.1:{port}/_standin/messages")
    command = [sys.executable, "-m", "devtools.fcm_standin", "--port", str(port), "--key", str(key)]
    env = {"FCM_API_BASE": f"http://127.0.0.1:{port}", "FCM_CREDENTIALS_FILE": str(key)}
    return command, env


def main() -> int:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bimride.settings")
    import django

    django.setup()
    port = os.environ.get("PORT", "8000")
    admin_email = prepare()

    stop_signals: list[int] = []
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda signum, frame: stop_signals.append(signum))
    children = []
    for name, (command, env) in commands(port).items():
        children.append(Process(name, command, env))
        say(f"started {name} (pid {children[-1].pid})")
    base = f"http://localhost:{port}"
    say(f"API docs  {base}/api/docs/")
    say(f"admin     {base}/admin/  (log in as {admin_email})")
    say(f"health    {base}/healthz  {base}/readyz")
    say("Ctrl-C stops everything")

    dead = None
    while not stop_signals and dead is None:
        time.sleep(0.2)
        dead = next((child for child in children if not child.alive()), None)
    say("stopping web and workers")
    for child in stop_all(children):
        say(f"{child.name} did not stop within {STOP_GRACE:.0f}s; killed it")
    if dead is not None:
        say(f"{dead.name} exited unexpectedly (status {dead.returncode}); stopped the others")
        return 1
    say("stopped")
    return 0


if __name__ == "__main__":
    sys.exit(main())
