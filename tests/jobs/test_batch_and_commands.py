"""Batch jobs in chunks with progress and resume; retention; `manage.py runjob`."""

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.pruner import prune
from bimride.jobs.engine.q2compat import Schedule
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job, ScheduleRun
from rides.models import Driver
from tests.factories import DriverFactory
from tests.jobtypes import create_effects_table

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _effects(db):
    create_effects_table()


def test_the_ranking_refresh_reports_progress_chunk_by_chunk():
    DriverFactory.create_batch(250, rank_score=0)
    job = enqueue("rides.refresh_driver_ranking")
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.result == {"drivers": 250}
    assert job.progress == {"done": 250, "total": 250, "cursor": Driver.objects.last().pk}
    assert not Driver.objects.filter(rank_score=0).exists()


def test_a_rerun_after_a_crash_continues_after_the_last_finished_chunk():
    drivers = DriverFactory.create_batch(250, rank_score=0)
    job = enqueue("rides.refresh_driver_ranking")
    # The first attempt finished its first chunk (200 drivers), then its worker died.
    Job.objects.filter(pk=job.pk).update(
        state="running",
        attempts=1,
        lease_expires_at=timezone.now() - timedelta(seconds=1),
        progress={"done": 200, "total": 250, "cursor": drivers[199].pk},
    )
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "succeeded" and job.result == {"drivers": 250}
    assert Driver.objects.filter(rank_score=0).count() == 200  # not redone
    assert not Driver.objects.filter(pk__gt=drivers[199].pk, rank_score=0).exists()


def test_progress_is_visible_in_the_job_api_and_the_admin(staff):
    job = enqueue("rides.refresh_driver_ranking")
    Job.objects.filter(pk=job.pk).update(progress={"done": 200, "total": 450, "cursor": 9})
    client = Client()
    client.force_login(staff)
    assert client.get(f"/api/jobs/{job.pk}").json()["progress"]["done"] == 200
    assert "450" in client.get(f"/admin/jobs/job/{job.pk}/change/").content.decode()


def test_pruning_deletes_what_is_past_retention_and_keeps_open_dead_letters(settings):
    settings.JOB_RETENTION = timedelta(days=7)
    old = timezone.now() - timedelta(days=8)
    done = enqueue("tests.effect_bulk", {"n": 1})
    recent = enqueue("tests.effect_bulk", {"n": 2})
    dead = enqueue("tests.declined", {"n": 3})
    for job in (done, recent, dead):
        run_job(job.pk)
    Job.objects.filter(pk__in=[done.pk, dead.pk]).update(finished_at=old)
    ScheduleRun.objects.create(schedule="jobs.prune", intended_at=old)

    counts = prune()

    assert counts["jobs"] == 1 and counts["schedule_runs"] == 1
    assert set(Job.objects.values_list("pk", flat=True)) == {recent.pk, dead.pk}
    DeadLetter.objects.filter(job=dead).update(resolution="discarded")
    assert prune()["jobs"] == 1 and not Job.objects.filter(pk=dead.pk).exists()


def test_runjob_runs_a_job_here_with_sync():
    out = StringIO()
    call_command("runjob", "tests.effect_default", "--payload", '{"n": 4}', "--sync", stdout=out)
    job = Job.objects.get()
    assert job.state == "succeeded" and f"job {job.pk}: succeeded" in out.getvalue()


def test_runjob_enqueues_without_sync_and_explains_bad_input():
    out = StringIO()
    call_command("runjob", "tests.effect_default", "--payload", '{"n": 4}', stdout=out)
    assert Job.objects.get().state == "queued" and "enqueued job" in out.getvalue()
    with pytest.raises(CommandError, match="No job named"):
        call_command("runjob", "no.such_job")
    with pytest.raises(CommandError, match="not valid JSON"):
        call_command("runjob", "tests.effect_default", "--payload", "{n:")
    with pytest.raises(CommandError, match="Invalid payload"):
        call_command("runjob", "tests.effect_default", "--payload", '{"n": "x"}')
    assert Job.objects.count() == 1


def test_sync_schedules_command_lists_the_declarations():
    out = StringIO()
    call_command("sync_schedules", stdout=out)
    assert "rides.refresh_driver_ranking" in out.getvalue() and "0 * * * *" in out.getvalue()
    assert Schedule.objects.filter(name="rides.refresh_driver_ranking").exists()


def test_the_schedule_page_lists_its_runs(staff):
    call_command("sync_schedules", stdout=StringIO())
    schedule = Schedule.objects.get(name="jobs.prune")
    ScheduleRun.objects.create(schedule="jobs.prune", intended_at=timezone.now())
    client = Client()
    client.force_login(staff)
    page = client.get(f"/admin/django_q/schedule/{schedule.pk}/change/").content.decode()
    assert "All runs" in page
    assert client.get("/admin/jobs/schedulerun/").status_code == 200
