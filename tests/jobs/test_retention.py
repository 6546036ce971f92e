"""Retention at scale: the pruner deletes final jobs past retention with their audit rows, in
batches, never a live job nor an open dead letter's, and unlinks whatever points at what it
deletes."""

from datetime import timedelta

import pytest
from django.utils import timezone

from bimride.jobs import tasks
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.pruner import prune, prune_jobs
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job, JobEvent, ScheduleRun
from bimride.jobs.ops.services import deadletter_retry
from tests.jobtypes import create_effects_table

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _retention(settings):
    create_effects_table()
    settings.JOB_RETENTION = timedelta(days=7)
    settings.JOB_PRUNE_DUTY = 1.0
    settings.JOB_PRUNE_BATCH = 2  # several batches from a handful of jobs


def days_ago(n: float):
    return timezone.now() - timedelta(days=n)


def finished(name: str = "tests.effect_bulk", *, days: float = 8, **payload) -> Job:
    """A job run to its end, then aged: finished (and created) `days` ago, events too."""
    job = enqueue(name, {"n": 1, **payload})
    run_job(job.pk)
    age(job, days)
    return Job.objects.get(pk=job.pk)


def dead_then_retried(days: float) -> tuple[Job, DeadLetter, Job]:
    """A job that failed every attempt `days` ago, and its dead letter retried today with a
    payload that succeeds."""
    job = enqueue("tests.effect_bulk", {"n": 1, "fail_times": 9})
    for _ in range(3):
        Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
        run_job(job.pk)
    age(job, days)
    letter = DeadLetter.objects.get(job=job)
    retry = deadletter_retry(dead_letter_id=letter.pk, user=None, payload={"n": 1})
    run_job(retry.pk)
    assert Job.objects.get(pk=retry.pk).state == "succeeded"
    return job, letter, retry


def age(job: Job, days: float) -> None:
    then = days_ago(days)
    Job.objects.filter(pk=job.pk, finished_at__isnull=False).update(finished_at=then)
    Job.objects.filter(pk=job.pk).update(created_at=then)
    JobEvent.objects.filter(job_id=job.pk).update(at=then)


def test_pruning_never_touches_a_live_job_or_an_open_dead_letter():
    queued = enqueue("tests.effect_bulk", {"n": 1})
    retrying = enqueue("tests.effect_bulk", {"n": 2, "fail_times": 1})
    run_job(retrying.pk)
    running = enqueue("tests.effect_bulk", {"n": 3})
    Job.objects.filter(pk=running.pk).update(state="running", started_at=days_ago(9))
    dead_open = finished("tests.declined")
    live = [queued, retrying, running]
    for job in live:
        age(job, 30)
    events_before = JobEvent.objects.filter(job__in=[*live, dead_open]).count()
    gone = [finished(), finished(), finished("tests.declined")]
    DeadLetter.objects.filter(job=gone[2]).update(resolution="discarded")

    counts = prune()

    assert counts["jobs"] == 3 and counts["events"] == 9 and counts["more"] is False
    kept = {queued.pk, retrying.pk, running.pk, dead_open.pk}
    assert set(Job.objects.values_list("pk", flat=True)) == kept
    assert Job.objects.get(pk=retrying.pk).state == "retrying"
    assert JobEvent.objects.count() == events_before  # every event of a kept job, however old
    assert DeadLetter.objects.filter(job=dead_open, resolution="").exists()
    assert not DeadLetter.objects.filter(job_id=gone[2].pk).exists()


def test_a_job_whose_retries_cross_the_cutoff_stays_whole_until_it_finished_long_enough():
    job = enqueue("tests.effect_bulk", {"n": 1, "fail_times": 2})
    run_job(job.pk)  # attempt 1 fails, 8 days ago
    age(job, 8)
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    run_job(job.pk)  # attempt 2 fails today: its events are either side of the cutoff
    assert prune()["jobs"] == 0
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now())
    run_job(job.pk)  # attempt 3 succeeds today
    trail = list(JobEvent.objects.filter(job=job).values_list("state", flat=True))
    assert trail == ["queued", "running", "retrying", "running", "retrying", "running", "succeeded"]

    assert prune()["jobs"] == 0  # finished today: kept, with its 8-day-old events
    assert JobEvent.objects.filter(job=job).count() == 7

    Job.objects.filter(pk=job.pk).update(finished_at=days_ago(8))
    assert prune()["jobs"] == 1
    assert not JobEvent.objects.filter(job_id=job.pk).exists()


def test_pruning_unlinks_what_points_at_a_pruned_job():
    dead, letter, retry = dead_then_retried(days=20)  # the retry succeeded today: it stays
    run = ScheduleRun.objects.create(schedule="nightly", intended_at=timezone.now(), job=dead)

    assert prune()["jobs"] == 1

    assert Job.objects.get(pk=retry.pk).retry_of_id is None
    assert not DeadLetter.objects.filter(pk=letter.pk).exists()
    assert ScheduleRun.objects.get(pk=run.pk).job_id is None


def test_a_dead_letters_retry_job_pruned_before_it_leaves_the_letter_unlinked():
    dead, letter, retry = dead_then_retried(days=1)
    age(retry, 9)  # only the retry is past retention

    assert prune()["jobs"] == 1

    assert DeadLetter.objects.get(pk=letter.pk).retry_job_id is None
    assert Job.objects.filter(pk=dead.pk).exists()


def test_pruning_goes_on_past_jobs_it_must_keep_batch_after_batch():
    jobs = [finished() for _ in range(3)]
    keep = finished("tests.declined")  # open dead letter, between the others by finish time
    jobs += [finished() for _ in range(3)]

    counts, more = prune_jobs(before=days_ago(7))

    assert (counts["jobs"], more) == (6, False)
    assert list(Job.objects.values_list("pk", flat=True)) == [keep.pk]


def test_a_prune_run_out_of_time_enqueues_the_next_run(monkeypatch):
    for _ in range(3):
        finished()
    monkeypatch.setattr(tasks, "PRUNE_BUDGET", 0)  # stop after the first batch

    result = tasks.prune({}, ctx=None)

    assert result["more"] is True and result["jobs"] == 2
    follow_up = Job.objects.get(name="jobs.prune", state="queued")
    run_job(follow_up.pk)
    assert Job.objects.filter(name="tests.effect_bulk").count() == 0
