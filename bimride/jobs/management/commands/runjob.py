import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from bimride.jobs.engine import errors, registry, shutdown
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import Job


class Command(BaseCommand):
    help = "Enqueue a job by name, or run it here and now with --sync."

    def add_arguments(self, parser) -> None:
        parser.add_argument("name", help="job name, e.g. rides.refresh_driver_ranking")
        parser.add_argument("--payload", default="{}", help="the payload, a JSON object")
        parser.add_argument("--sync", action="store_true", help="run it in this process")

    def handle(self, *args, name: str, payload: str, sync: bool, **options) -> None:
        if name not in registry.all_types():
            known = ", ".join(sorted(registry.all_types()))
            raise CommandError(f"No job named {name!r}. Known jobs: {known}")
        try:
            data = json.loads(payload)
        except ValueError as error:
            raise CommandError(f"--payload is not valid JSON: {error}") from None
        try:
            # With --sync the job runs before its own push commits, so workers see it done.
            with transaction.atomic():
                job = enqueue(name, data)
                if sync:
                    self.stdout.write(f"running job {job.pk} ({name}) here")
                    with shutdown.obeying_stop_signals():  # a Ctrl-C still stops it
                        run_job(job.pk)
        except errors.JobPayloadError as error:
            raise CommandError(str(error)) from None
        if not sync:
            self.stdout.write(f"enqueued job {job.pk} ({name}) on {job.queue}")
            return
        job = Job.objects.get(pk=job.pk)
        self.stdout.write(f"job {job.pk}: {job.state}; result {json.dumps(job.result)}")
        if job.state != Job.State.SUCCEEDED:
            raise CommandError(f"job {job.pk} {job.state}: {job.last_error}")
