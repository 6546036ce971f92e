"""The job system's guarantees, shown through real `qcluster` processes on real PostgreSQL."""

import os
import random
import signal
import threading
from datetime import timedelta

import pytest
from django.db import connection, transaction
from django.db.models import Count, F

from bimride.jobs.engine.enqueue import enqueue, publish
from bimride.jobs.engine.q2compat import OrmQ
from bimride.jobs.engine.relay import relay
from bimride.jobs.models import DeadLetter, Job, JobEvent
from tests.conftest import wait_until
from tests.jobtypes import Happened, create_effects_table, effects

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _effects(transactional_db):
    create_effects_table()


def state_of(job: Job) -> str:
    return Job.objects.values_list("state", flat=True).get(pk=job.pk)


def test_a_job_runs_on_its_queue_and_succeeds(start_cluster):
    start_cluster("critical")
    job = enqueue("tests.effect_critical", {"n": 1})
    wait_until(lambda: state_of(job) == "succeeded", what="the job to succeed")
    assert effects() == [(job.pk, 1)]


def test_a_deferred_job_runs_at_its_due_time_within_a_second(start_cluster):
    start_cluster("default")
    warm = enqueue("tests.effect_default", {"n": 0})  # lateness is the workers', not start-up's
    wait_until(lambda: state_of(warm) == "succeeded", what="the workers to start")
    job = enqueue("tests.effect_default", {"n": 1}, delay=timedelta(seconds=2))
    wait_until(lambda: state_of(job) == "succeeded", what="the deferred job to succeed")
    job.refresh_from_db()
    lateness = (job.started_at - job.run_at).total_seconds()
    assert 0 <= lateness < 1.0, lateness


def test_failed_attempts_are_retried_until_the_job_succeeds_once(start_cluster):
    start_cluster("default")
    job = enqueue("tests.effect_default", {"n": 1, "fail_times": 2})
    wait_until(lambda: state_of(job) == "succeeded", what="the third attempt to succeed")
    job.refresh_from_db()
    assert job.attempts == 3 and effects() == [(job.pk, 3)]
    assert list(job.events.values_list("state", flat=True)) == [
        "queued", "running", "retrying", "running", "retrying", "running", "succeeded",
    ]  # fmt: skip


def test_a_permanent_failure_is_dead_lettered_without_retries(start_cluster):
    start_cluster("default")
    job = enqueue("tests.declined", {"n": 1})
    wait_until(lambda: state_of(job) == "dead", what="the job to die")
    letter = DeadLetter.objects.get(job=job)
    assert letter.attempts == 1 and letter.error_class == "PermanentError"


def test_a_timeout_is_a_failed_attempt(start_cluster):
    start_cluster("default")
    job = enqueue("tests.slow", {"n": 1, "sleep": 5})
    wait_until(lambda: state_of(job) == "dead", timeout=30, what="both attempts to time out")
    letter = DeadLetter.objects.get(job=job)
    assert letter.attempts == 2 and letter.error_class == "JobTimeout"
    assert [h["attempt"] for h in letter.history] == [1, 2]


def test_a_worker_killed_mid_job_does_not_lose_the_job(start_cluster):
    cluster = start_cluster("default", workers=1)
    job = enqueue("tests.sleepy", {"n": 1, "sleep": 20})
    wait_until(lambda: state_of(job) == "running", what="the job to start")
    job.refresh_from_db()
    os.kill(int(job.worker.rsplit(":", 1)[1]), signal.SIGKILL)

    # The lease (timeout 3 s + grace 1 s) runs out; the relay, scheduled every minute in
    # production, hands the orphan back to the queue and the respawned worker runs it.
    def rescued():
        relay()
        return state_of(job) == "succeeded"

    wait_until(rescued, timeout=30, interval=0.5, what="the orphan to be rescued")
    job.refresh_from_db()
    assert job.attempts == 2 and effects() == [(job.pk, 2)]
    assert cluster.process.poll() is None  # the cluster survived the loss of a worker


def test_workers_killed_while_idle_leave_the_cluster_taking_jobs(start_cluster):
    """An idle worker waits for its next task; killed then, it must not take the cluster's
    task queue down with it."""
    start_cluster("default", workers=2)
    for round_number in range(5):
        with transaction.atomic():
            jobs = [
                enqueue("tests.effect_default", {"n": round_number * 10 + i}) for i in range(10)
            ]
        ids = [job.pk for job in jobs]
        wait_until(
            lambda ids=ids: Job.objects.filter(pk__in=ids, state="succeeded").count() == 10,
            timeout=20,
            what=f"round {round_number + 1}'s jobs (after {round_number} idle kills)",
        )
        workers = set(Job.objects.filter(pk__in=ids).values_list("worker", flat=True))
        os.kill(int(random.choice(sorted(workers)).rsplit(":", 1)[1]), signal.SIGKILL)
    assert len(effects()) == 50


def test_a_job_without_a_broker_row_is_relayed(start_cluster, settings):
    settings.JOB_RELAY_AFTER = timedelta(0)
    start_cluster("default")
    with transaction.atomic():  # its broker row lost: a purged queue, an older release
        job = enqueue("tests.effect_default", {"n": 1})
        OrmQ.objects.all().delete()
        Job.objects.filter(pk=job.pk).update(dispatched_at=None)
    assert relay()["undispatched"] == 1
    wait_until(lambda: state_of(job) == "succeeded", what="the relayed job to succeed")
    assert effects() == [(job.pk, 1)]


def test_two_clusters_per_queue_lose_nothing_and_run_nothing_twice(start_cluster, settings):
    """2,000 jobs, a tenth failing once, two clusters on each of two queues, and the relay
    running throughout: every job succeeds, with exactly one committed effect."""
    settings.JOB_RELAY_AFTER = timedelta(0)
    for queue in ("default", "critical"):
        start_cluster(queue, workers=2)
        start_cluster(queue, workers=2)
    rng = random.Random(7)
    with transaction.atomic():
        for n in range(2000):
            enqueue(
                rng.choice(["tests.effect_default", "tests.effect_critical"]),
                {"n": n, "fail_times": 1 if rng.random() < 0.1 else 0},
            )
    stop = threading.Event()

    def relay_loop():
        while not stop.is_set():
            relay()
            stop.wait(0.2)
        connection.close()

    relayer = threading.Thread(target=relay_loop)
    relayer.start()
    try:
        wait_until(  # its own jobs: a default cluster also fires the cron schedules
            lambda: (
                not Job.objects.filter(name__startswith="tests.")
                .exclude(state="succeeded")
                .exists()
            ),
            timeout=180,
            interval=0.5,
            what="all 2,000 jobs to succeed",
        )
    finally:
        stop.set()
        relayer.join(timeout=10)

    done = effects()
    assert len(done) == 2000 and len({job_id for job_id, _ in done}) == 2000
    assert not DeadLetter.objects.exists()
    # Each attempt was claimed exactly once: one "running" event per attempt.
    runs = JobEvent.objects.filter(state="running").values("job").annotate(n=Count("id"))
    attempts = dict(Job.objects.values_list("id", "attempts"))
    assert all(row["n"] == attempts[row["job"]] for row in runs)
    assert Job.objects.filter(attempts=F("max_attempts") + 1).count() == 0
    assert Job.objects.filter(attempts=2).count() == sum(1 for _, a in done if a == 2)


def test_each_subscriber_of_an_event_succeeds_or_dead_letters_on_its_own(start_cluster):
    start_cluster("default")
    jobs = {job.name: job for job in publish(Happened(n=1))}
    assert set(jobs) == {"tests.listener_records", "tests.listener_refuses"}
    wait_until(
        lambda: (
            state_of(jobs["tests.listener_refuses"]) == "dead"
            and state_of(jobs["tests.listener_records"]) == "succeeded"
        ),
        what="one subscriber to die and the other to succeed",
    )
    assert effects() == [(jobs["tests.listener_records"].pk, 1)]
    assert DeadLetter.objects.get().name == "tests.listener_refuses"
