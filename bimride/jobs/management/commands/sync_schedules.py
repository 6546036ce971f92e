from django.core.management.base import BaseCommand

from bimride.jobs.engine.schedules import declared, sync_schedules


class Command(BaseCommand):
    help = "Make django-q2's schedules match the ones declared in code (idempotent)."

    def handle(self, *args, **options) -> None:
        report = sync_schedules()
        for spec in declared().values():
            self.stdout.write(f"  {spec.name:<40} {spec.cron:<14} {spec.tz:<16} -> {spec.job}")
        self.stdout.write(
            self.style.SUCCESS(
                "schedules: " + ", ".join(f"{len(names)} {what}" for what, names in report.items())
            )
        )
