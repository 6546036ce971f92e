"""Cron schedules declared in code, next to the job they run, and synced into django-q2.

    schedule("rides.refresh_driver_ranking", "0 * * * *")  # hourly

Each declaration becomes a django-q2 `Schedule` row (its next run evaluated in the schedule's
own time zone) whose task is `fire(name, scheduled_for=...)`. `fire` records the occurrence as
a `ScheduleRun`, unique per schedule and intended time, and enqueues the job: two clusters, or
a scheduler that fires twice, still run each occurrence once. Occurrences missed while every
worker was down run once on restart, or each in turn with `catch_up=True`.
"""

import logging
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from croniter import croniter
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from bimride.jobs.engine import broker, metrics, registry
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.models import ScheduleRun

logger = logging.getLogger(__name__)

FIRE = "bimride.jobs.engine.schedules.fire"
FIRED_BEFORE = ("bimride.jobs.schedules.fire",)  # the rows of older releases
MAX_CATCH_UP = 100


@dataclass(frozen=True)
class ScheduleSpec:
    name: str
    job: str
    cron: str
    tz: str = "UTC"
    payload: dict = field(default_factory=dict)
    catch_up: bool = False

    def next_after(self, moment: datetime) -> datetime:
        """The first occurrence strictly after `moment`, as an aware UTC datetime."""
        local = moment.astimezone(ZoneInfo(self.tz))
        return croniter(self.cron, local).get_next(datetime).astimezone(ZoneInfo("UTC"))

    def occurrences(self, start: datetime, end: datetime) -> list[datetime]:
        """Occurrences in [start, end], at most MAX_CATCH_UP of them."""
        local = start.astimezone(ZoneInfo(self.tz)) - timedelta(seconds=1)
        iterator, found = croniter(self.cron, local), []
        while len(found) < MAX_CATCH_UP:
            nxt = iterator.get_next(datetime)
            if nxt > end:
                break
            found.append(nxt.astimezone(ZoneInfo("UTC")))
        return found


_specs: dict[str, ScheduleSpec] = {}


def schedule(
    job: str,
    cron: str,
    *,
    name: str | None = None,
    tz: str | None = None,
    payload: dict | None = None,
    catch_up: bool = False,
) -> ScheduleSpec:
    """Declare that job `job` runs on `cron` (evaluated in `tz`, default TIME_ZONE)."""
    if not croniter.is_valid(cron):
        raise ValueError(f"{job}: invalid cron expression {cron!r}")
    spec = ScheduleSpec(
        name=name or job,
        job=job,
        cron=cron,
        tz=tz or settings.TIME_ZONE,
        payload=payload or {},
        catch_up=catch_up,
    )
    ZoneInfo(spec.tz)  # an unknown zone fails at declaration, not at 3 a.m.
    _specs[spec.name] = spec
    return spec


def declared() -> dict[str, ScheduleSpec]:
    return dict(_specs)


def fire(name: str, scheduled_for: str | None = None) -> list[int]:
    """Run the occurrence of schedule `name` intended for `scheduled_for` (once, whoever asks).

    Called by django-q2's scheduler; returns the ids of the jobs it enqueued."""
    spec = _specs.get(name)
    if spec is None:
        logger.warning("schedule %s fired but is no longer declared", name)
        return []
    now = timezone.now()
    intended = datetime.fromisoformat(scheduled_for) if scheduled_for else now
    due = spec.occurrences(intended, now) if spec.catch_up else [intended]
    jobs = [job_id for moment in due or [intended] if (job_id := _run_once(spec, moment))]
    broker.set_schedule_next_run(name=name, next_run=spec.next_after(now))
    return jobs


def _run_once(spec: ScheduleSpec, intended: datetime) -> int | None:
    try:
        with transaction.atomic():
            run = ScheduleRun.objects.create(schedule=spec.name, intended_at=intended)
            run.job = enqueue(
                spec.job,
                spec.payload,
                idempotency_key=f"schedule:{spec.name}:{intended.isoformat()}",
            )
            run.save(update_fields=["job"])
        metrics.SCHEDULE_RUNS.labels(spec.name).inc()
    except IntegrityError:
        logger.info("schedule %s for %s already ran", spec.name, intended.isoformat())
        return None
    return run.job_id


def sync_schedules() -> dict[str, list[str]]:
    """Make django-q2's Schedule rows match the declarations (idempotent). Rows made by hand
    (any other task function) are left alone."""
    now = timezone.now()
    for spec in _specs.values():
        registry.get(spec.job)  # a schedule of an unknown job is a bug: fail loudly
    return broker.sync_schedule_rows(
        {
            spec.name: {"cron": spec.cron, "tz": spec.tz, "next_run": spec.next_after(now)}
            for spec in _specs.values()
        },
        func=FIRE,
        formerly=FIRED_BEFORE,
    )
