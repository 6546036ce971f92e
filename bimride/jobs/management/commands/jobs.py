"""`manage.py jobs stats|list|events|retry|discard|purge`: the ops dashboard on the command line."""

import getpass

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from bimride.errors import BimRideError
from bimride.jobs.engine import events, registry
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.ops import selectors, services


class Command(BaseCommand):
    help = "Inspect queues and jobs, retry or discard dead letters, purge waiting jobs."

    def add_arguments(self, parser) -> None:
        sub = parser.add_subparsers(dest="action", required=True)
        sub.add_parser("stats", help="depth, lag and throughput per queue")
        listing = sub.add_parser("list", help="the newest jobs, filtered")
        listing.add_argument("--state", choices=Job.State.values)
        listing.add_argument("--queue")
        listing.add_argument("--name")
        listing.add_argument("--limit", type=int, default=20)
        sub.add_parser("events", help="the declared events and the jobs subscribed to each")
        retry = sub.add_parser("retry", help="retry dead letters (by id, or --all open ones)")
        retry.add_argument("ids", nargs="*", type=int)
        retry.add_argument("--all", action="store_true")
        retry.add_argument("--name", help="with --all: only this job type")
        discard = sub.add_parser("discard", help="discard dead letters, with a note")
        discard.add_argument("ids", nargs="+", type=int)
        discard.add_argument("--note", required=True)
        purge = sub.add_parser("purge", help="cancel every waiting job of a queue")
        purge.add_argument("--queue", required=True)
        purge.add_argument("--yes", action="store_true", help="really do it")
        for action in (retry, discard, purge):  # who the audit trail names
            action.add_argument("--by", metavar="EMAIL", help="the staff member acting")

    def handle(self, *args, action: str, **options) -> None:
        if options.get("by"):
            options["user"] = self._staff(options["by"])
        getattr(self, f"_{action}")(**options)

    @staticmethod
    def _staff(email: str):
        user = get_user_model().objects.filter(username=email.strip().lower()).first()
        if user is None or not (user.is_active and user.is_staff):
            raise CommandError(f"--by {email}: no active staff account with that email.")
        return user

    def _stats(self, **options) -> None:
        head = f"{'queue':<10}{'queued':>8}{'retrying':>10}{'running':>9}{'lag s':>9}"
        self.stdout.write(f"{head}{'done/h':>9}{'dead/h':>8}{'open DLQ':>10}")
        for q in selectors.queue_stats():
            # "~": PostgreSQL's estimate, above selectors.DEPTH_CAP
            d = {s: f"{'~' * (s in q['depth_estimated'])}{n}" for s, n in q["depth"].items()}
            self.stdout.write(
                f"{q['queue']:<10}{d['queued']:>8}{d['retrying']:>10}{d['running']:>9}"
                f"{q['lag_seconds']:>9.1f}{q['succeeded_last_hour']:>9}{q['dead_last_hour']:>8}"
                f"{q['dead_letters_open']:>10}"
            )

    def _list(self, *, state, queue, name, limit, **options) -> None:
        jobs = Job.objects.all()
        for field, value in (("state", state), ("queue", queue), ("name", name)):
            if value:
                jobs = jobs.filter(**{field: value})
        for job in jobs[:limit]:
            error = f"  {job.last_error[:60]}" if job.last_error else ""
            self.stdout.write(
                f"#{job.pk:<8} {job.name:<36} {job.queue:<9} {job.state:<10}"
                f" {job.attempts}/{job.max_attempts}  {job.created_at:%Y-%m-%d %H:%M:%S}{error}"
            )

    def _events(self, **options) -> None:
        declared, subscribed = events.declared(), registry.subscriptions()
        for name in sorted(set(declared) | set(subscribed)):
            event = declared.get(name)
            where = f"{event.__module__}.{event.__qualname__}" if event else "NOT DECLARED"
            fields = ", ".join(event.schema().fields) if event else ""
            self.stdout.write(f"{name}  ({where}: {fields})")
            for job_name in subscribed.get(name) or ["(no subscriber)"]:
                self.stdout.write(f"    -> {job_name}")

    def _each(self, ids: list[int], operation, verb: str) -> None:
        failed = 0
        for dead_letter_id in ids:
            try:
                result = operation(dead_letter_id)
            except BimRideError as error:
                failed += 1
                self.stderr.write(f"dead letter {dead_letter_id}: {error.message}")
            else:
                self.stdout.write(f"dead letter {dead_letter_id}: {verb} {result}")
        if failed:
            raise CommandError(f"{failed} of {len(ids)} refused")

    def _retry(self, *, ids, all, name, user=None, **options) -> None:
        if all:
            open_letters = DeadLetter.objects.filter(resolution="")
            ids = list(
                (open_letters.filter(name=name) if name else open_letters).values_list(
                    "pk", flat=True
                )
            )
        if not ids:
            raise CommandError("Name dead letter ids, or use --all.")
        self._each(
            ids,
            lambda pk: f"as job {services.deadletter_retry(dead_letter_id=pk, user=user).pk}",
            "retried",
        )

    def _discard(self, *, ids, note, user=None, **options) -> None:
        self._each(
            ids,
            lambda pk: services.deadletter_discard(dead_letter_id=pk, user=user, note=note).note,
            "discarded:",
        )

    def _purge(self, *, queue, yes, user=None, **options) -> None:
        waiting = Job.objects.filter(queue=queue, state__in=["queued", "retrying"])
        count = waiting.count()
        if not yes:
            self.stdout.write(f"{count} waiting job(s) on {queue} would be cancelled; add --yes.")
            return
        note = f"purged from the command line (system user {getpass.getuser()})"
        for job_id in waiting.values_list("pk", flat=True).iterator():
            try:
                services.job_cancel(job_id=job_id, user=user, note=note)
            except BimRideError:
                count -= 1  # it started meanwhile
        self.stdout.write(self.style.SUCCESS(f"cancelled {count} job(s) on {queue}"))
