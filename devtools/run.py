"""`make run` (`python -m devtools.run`): migrate, seed demo data, ensure an admin, then run
web + one worker per queue.

The children run in their own sessions, so a terminal Ctrl-C reaches only this process, which
stops them once: SIGTERM to each main process (django-q2 stops its own workers), a grace period,
then SIGKILL to whatever is left in their process groups.
"""

import contextlib
import os
import secrets
import signal
import subprocess
import sys
import time
from urllib.parse import urlsplit

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from django.db import connections, transaction

STOP_GRACE = 15  # seconds the children get to finish their work after SIGTERM
DEFAULT_ADMIN_EMAIL = "admin@bimride.example"


class Command(BaseCommand):
    help = "Migrate, seed demo data, ensure an admin user, then run web and workers until Ctrl-C."

    def handle(self, *args, **options) -> None:
        port = os.environ.get("PORT", "8000")
        self.say("migrating the database")
        call_command("migrate", interactive=False, verbosity=0)
        if settings.PRODUCTION:
            call_command("collectstatic", interactive=False, verbosity=0)
        self.say("seeding demo data")
        call_command("seed_demo", stdout=self.stdout)
        admin_email = self.ensure_admin()
        connections.close_all()  # the children open their own

        stop_signals: list[int] = []
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, lambda signum, frame: stop_signals.append(signum))
        children = self.start_children(port)
        base = f"http://localhost:{port}"
        self.say(f"API docs  {base}/api/docs/")
        self.say(f"admin     {base}/admin/  (log in as {admin_email})")
        self.say(f"health    {base}/healthz  {base}/readyz")
        self.say("Ctrl-C stops everything")

        dead = None
        while not stop_signals and dead is None:
            time.sleep(0.2)
            dead = next((name for name, p in children.items() if p.poll() is not None), None)
        self.stop(children)
        if dead is not None:
            code = children[dead].returncode
            raise CommandError(f"{dead} exited unexpectedly (status {code}); stopped the others")
        self.say("stopped")

    def say(self, message: str) -> None:
        self.stdout.write(f"run_all: {message}")
        self.stdout.flush()

    def ensure_admin(self) -> str:
        """Create the superuser ADMIN_EMAIL, or give it ADMIN_PASSWORD when that is set."""
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
                self.say(f"created admin {email}")
                if generated:
                    self.say(f"admin password: {generated}  (shown once; ADMIN_PASSWORD sets it)")
            elif password:
                user.set_password(password)
                user.is_staff = user.is_superuser = user.is_active = True
                user.save()
                self.say(f"admin {email}: password set from ADMIN_PASSWORD")
            else:
                self.say(f"admin {email} exists; password unchanged (ADMIN_PASSWORD changes it)")
        return email

    def start_children(self, port: str) -> dict[str, subprocess.Popen]:
        """Start web and one qcluster per queue, each in its own session."""
        manage = [sys.executable, "manage.py"]
        if settings.PRODUCTION:
            web = [sys.executable, "-m", "gunicorn", "bimride.wsgi", "-b", f"0.0.0.0:{port}"]
            commands = {"web (gunicorn)": ([*web, "-w", "2"], {})}
        else:
            web = [*manage, "runserver", f"0.0.0.0:{port}", "--noreload"]
            commands = {"web (runserver)": (web, {})}
        for queue in settings.JOB_QUEUES:
            commands[f"worker {queue}"] = ([*manage, "qcluster"], {"Q_CLUSTER_NAME": queue})
        if settings.STRIPE_USES_STANDIN:  # no STRIPE_API_KEY: payments talk to a local stand-in
            stripe_port = str(urlsplit(settings.STRIPE_API_BASE).port or 12111)
            standin = [sys.executable, "-m", "devtools.stripe_standin", "--port", stripe_port]
            commands["Stripe stand-in"] = (standin, {})
            self.say(f"STRIPE_API_KEY is unset: payments use the Stripe stand-in on {stripe_port}")
        children = {}
        for name, (command, env) in commands.items():
            children[name] = subprocess.Popen(
                command,
                cwd=settings.BASE_DIR,
                env={**os.environ, **env},
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
            self.say(f"started {name} (pid {children[name].pid})")
        return children

    def stop(self, children: dict[str, subprocess.Popen]) -> None:
        """SIGTERM each main process, wait up to STOP_GRACE, then SIGKILL their groups."""
        self.say("stopping web and workers")
        for process in children.values():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)  # not the group: django-q2 stops its own
        deadline = time.monotonic() + STOP_GRACE
        for name, process in children.items():
            try:
                process.wait(timeout=max(0.0, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                self.say(f"{name} did not stop within {STOP_GRACE}s; killing it")
        for process in children.values():
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, signal.SIGKILL)  # anything the shutdown left behind
            process.wait()


def main() -> None:
    """`python -m devtools.run`: the command above, outside any installed app."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bimride.settings")
    import django

    django.setup()
    Command().run_from_argv(["manage.py", "run"])


if __name__ == "__main__":
    main()
