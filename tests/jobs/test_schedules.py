"""Schedules in code: synced into django-q2, evaluated in their time zone, each occurrence once."""

import threading
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.db import connection
from django.utils import timezone
from django_q.scheduler import scheduler

from bimride.jobs.engine import schedules
from bimride.jobs.engine.q2compat import OrmQ, Schedule
from bimride.jobs.engine.schedules import FIRE, ScheduleSpec, fire, schedule, sync_schedules
from bimride.jobs.models import Job, ScheduleRun
from tests.conftest import wait_until

BERLIN = ZoneInfo("Europe/Berlin")


@pytest.fixture
def declare():
    """Declare schedules for one test only."""
    before = dict(schedules._specs)
    yield schedule
    schedules._specs.clear()
    schedules._specs.update(before)


@pytest.mark.parametrize(
    "first_day",
    [datetime(2026, 3, 27, 12, tzinfo=BERLIN), datetime(2026, 10, 23, 12, tzinfo=BERLIN)],
    ids=["spring-forward", "fall-back"],
)
def test_a_midnight_schedule_runs_once_per_local_day_across_a_dst_change(first_day):
    spec = ScheduleSpec(name="nightly", job="jobs.prune", cron="0 0 * * *", tz="Europe/Berlin")
    runs = spec.occurrences(first_day, first_day + timedelta(days=4))
    local = [run.astimezone(BERLIN) for run in runs]
    assert [(t.day, t.hour, t.minute) for t in local] == [
        (first_day.day + n, 0, 0) for n in range(1, 5)
    ]
    gaps = {(b - a).total_seconds() / 3600 for a, b in zip(runs, runs[1:], strict=False)}
    assert 23 in gaps or 25 in gaps  # one local day of the four is an hour short or long


def test_next_run_is_evaluated_in_the_schedule_time_zone():
    spec = ScheduleSpec(name="payouts", job="jobs.prune", cron="0 2 * * 1", tz="Europe/Berlin")
    nxt = spec.next_after(datetime(2026, 11, 23, 12, tzinfo=UTC))  # a Monday
    assert nxt == datetime(2026, 11, 30, 1, tzinfo=UTC)  # Monday 02:00 in Berlin (UTC+1)


def test_an_invalid_declaration_fails_at_import_time(declare):
    with pytest.raises(ValueError, match="invalid cron"):
        declare("jobs.prune", "every day")
    with pytest.raises(Exception, match="Mars"):
        declare("jobs.prune", "0 0 * * *", tz="Mars/Olympus")


@pytest.mark.django_db
def test_sync_is_idempotent_updates_and_removes_and_leaves_hand_made_rows_alone(declare):
    Schedule.objects.create(name="by hand", func="math.floor", args="1", schedule_type="D")
    first = sync_schedules()
    assert (
        "jobs.relay_outbox" in first["created"]
        or Schedule.objects.filter(name="jobs.relay_outbox").exists()
    )
    assert sync_schedules() == {"created": [], "updated": [], "deleted": []}

    declare("jobs.prune", "0 4 * * *", name="jobs.prune")  # the cron changed
    declare("jobs.prune", "0 5 * * *", name="jobs.prune_again")  # a new one
    report = sync_schedules()
    assert report["updated"] == ["jobs.prune"] and report["created"] == ["jobs.prune_again"]
    assert Schedule.objects.get(name="jobs.prune").cron == "0 4 * * *"

    del schedules._specs["jobs.prune_again"]
    assert sync_schedules()["deleted"] == ["jobs.prune_again"]
    assert Schedule.objects.filter(name="by hand").exists()


@pytest.mark.django_db
def test_rows_of_an_older_release_move_to_the_schedules_current_task_path(declare):
    sync_schedules()
    Schedule.objects.filter(name="jobs.prune").update(func="bimride.jobs.schedules.fire")
    assert sync_schedules()["updated"] == ["jobs.prune"]
    assert list(Schedule.objects.filter(name="jobs.prune").values_list("func", flat=True)) == [FIRE]


@pytest.mark.django_db
def test_an_occurrence_fired_twice_runs_once():
    intended = timezone.now().replace(second=0, microsecond=0)
    first = fire("jobs.prune", scheduled_for=intended.isoformat())
    again = fire("jobs.prune", scheduled_for=intended.isoformat())
    assert len(first) == 1 and again == []
    run = ScheduleRun.objects.get()
    assert run.intended_at == intended and run.job.name == "jobs.prune"
    assert run.job.idempotency_key == f"schedule:jobs.prune:{intended.isoformat()}"


@pytest.mark.django_db
def test_missed_occurrences_run_once_unless_the_schedule_catches_up(declare):
    three_hours_ago = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(hours=3)
    declare("jobs.prune", "0 * * * *", name="hourly")
    assert len(fire("hourly", scheduled_for=three_hours_ago.isoformat())) == 1
    declare("jobs.prune", "0 * * * *", name="hourly_catch_up", catch_up=True)
    assert len(fire("hourly_catch_up", scheduled_for=three_hours_ago.isoformat())) == 4
    # django-q2's next run is corrected to the next occurrence after now
    assert ScheduleRun.objects.filter(schedule="hourly_catch_up").count() == 4


@pytest.mark.django_db(transaction=True)
def test_concurrent_schedulers_fire_each_due_occurrence_once(declare):
    names = [f"every_minute_{n}" for n in range(10)]
    for name in names:
        declare("jobs.prune", "* * * * *", name=name)
    sync_schedules()
    for round_ in range(3):
        OrmQ.objects.all().delete()
        Schedule.objects.filter(func=FIRE).update(next_run=timezone.now() - timedelta(seconds=1))
        barrier = threading.Barrier(4)

        def tick(barrier=barrier):
            barrier.wait(timeout=10)
            scheduler()
            connection.close()

        threads = [threading.Thread(target=tick) for _ in range(4)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)
        fired = [t.task["args"][0] for t in OrmQ.objects.all()]
        assert sorted(fired) == sorted(
            Schedule.objects.filter(func=FIRE).values_list("name", flat=True)
        ), f"round {round_}"


@pytest.mark.workers
@pytest.mark.django_db(transaction=True)
def test_two_default_clusters_run_each_due_schedule_once(start_cluster):
    """Every declared schedule made due now; two `default` clusters' schedulers (which tick
    every 30 s) race for them; each occurrence runs exactly once."""
    sync_schedules()
    due = timezone.now().replace(second=0, microsecond=0) - timedelta(minutes=1)
    Schedule.objects.filter(func=FIRE).update(next_run=due)
    expected = set(Schedule.objects.filter(func=FIRE).values_list("name", flat=True))
    for _ in range(2):
        start_cluster("default")
    start_cluster("bulk")
    start_cluster("critical")  # the ride expiry sweep's queue

    wait_until(
        lambda: set(ScheduleRun.objects.values_list("schedule", flat=True)) == expected,
        timeout=75,
        interval=0.5,
        what="every schedule to fire",
    )
    wait_until(
        lambda: not Job.objects.exclude(state="succeeded").exists(),
        timeout=30,
        what="the scheduled jobs to succeed",
    )
    runs = list(ScheduleRun.objects.values_list("schedule", "intended_at"))
    assert len(runs) == len(expected) and all(at == due for _, at in runs)
    assert Job.objects.count() == len(expected)
    assert all(s.next_run > timezone.now() for s in Schedule.objects.filter(func=FIRE))
