"""The pooler restarted, then stopped for a few seconds, under web and worker load
(`make test-pooled` only): the API answers 503 `unavailable` meanwhile, never a 500; workers and
web recover by themselves; every job enqueued before, during and after runs once."""

import threading
import time
from datetime import timedelta

import pytest
from django.db import InterfaceError, OperationalError, connection, transaction
from django.db.models import Count

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.relay import relay
from bimride.jobs.models import DeadLetter, Job
from tests.conftest import wait_until
from tests.jobs.test_pooled_workers import idle_waits
from tests.jobtypes import create_effects_table, effects

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

OUTAGE_SECONDS = 3.0  # how long the pooler stays stopped (the fault, not a measurement)


class Producer(threading.Thread):
    """Enqueues a job every 20 ms, each in its own transaction, until stopped; remembers the
    jobs whose commit it saw (an enqueue that failed with the pooler down raised instead)."""

    def __init__(self):
        super().__init__(daemon=True)
        self.committed: list[int] = []
        self.failed = 0
        self.stopping = threading.Event()

    def run(self) -> None:
        n = 0
        while not self.stopping.wait(0.02):
            n += 1
            try:
                with transaction.atomic():
                    job = enqueue("tests.effect_default", {"n": n})
                self.committed.append(job.pk)
            except (OperationalError, InterfaceError):
                self.failed += 1
                connection.close()
        connection.close()


def call_api(client, answers: list) -> int:
    """One API request that reads the database; its answer is recorded."""
    response = client.get("/api/rides")
    answers.append((response.status_code, response.json()))
    return response.status_code


def drive_api_while(client, answers: list, seconds: float) -> None:
    """Keep calling the API for `seconds` (the length of a fault, not a bound on anything)."""
    until = time.monotonic() + seconds
    while time.monotonic() < until:
        call_api(client, answers)
        time.sleep(0.05)


def ours():
    """The test's jobs (a default cluster also fires the cron schedules' jobs)."""
    return Job.objects.filter(name="tests.effect_default")


def not_succeeded() -> str:
    rows = ours().exclude(state="succeeded").values_list("pk", "state", "attempts")
    return f"every job to succeed; still waiting: {list(rows[:20])}"


def test_a_pooler_restart_and_outage_lose_no_job_and_answer_503_meanwhile(
    session_pooler, start_cluster, as_rider, settings, tmp_path
):
    create_effects_table()
    settings.JOB_STALL_AFTER = timedelta(seconds=5)  # jobs a pusher took as the pooler died
    metrics = [tmp_path / "one", tmp_path / "two"]
    clusters = [start_cluster("default", PROMETHEUS_MULTIPROC_DIR=m) for m in metrics]
    for directory in metrics:  # both running (a cluster refuses to start without a database)
        directory.mkdir(exist_ok=True)
        wait_until(lambda d=directory: idle_waits(d, "default"), what="both clusters to idle")
    before = [enqueue("tests.effect_default", {"n": 0}).pk for _ in range(20)]
    answers: list = []
    assert call_api(as_rider, answers) == 200

    producer = Producer()
    producer.start()
    try:
        drive_api_while(as_rider, answers, 1.0)
        session_pooler.restart()  # every client and server connection drops at once
        drive_api_while(as_rider, answers, 1.0)
        session_pooler.stop()
        drive_api_while(as_rider, answers, OUTAGE_SECONDS)
        session_pooler.start()
        wait_until(lambda: call_api(as_rider, answers) == 200, what="the API to answer again")
        wait_until(lambda: len(producer.committed) > 50, what="new jobs to be enqueued")
    finally:
        producer.stopping.set()
        producer.join(timeout=10)

    statuses = {status for status, _ in answers}
    assert statuses <= {200, 503}, answers
    assert 503 in statuses  # the outage was seen, and answered as such
    assert all(body["error"]["code"] == "unavailable" for s, body in answers if s == 503)
    assert producer.failed > 0

    def all_ran() -> bool:
        relay()  # every minute in production: orphans of the outage, stalled takes
        return not ours().exclude(state="succeeded").exists()

    wait_until(all_ran, timeout=90, interval=0.5, what=not_succeeded)
    jobs = set(ours().values_list("pk", flat=True))
    assert set(before) | set(producer.committed) <= jobs  # nothing enqueued was lost
    done = effects()
    assert len(done) == len(jobs) and {job_id for job_id, _ in done} == jobs  # each once
    assert not DeadLetter.objects.exists()
    assert not ours().values("pk").annotate(n=Count("events")).filter(n__lt=3).exists()
    assert all(cluster.alive() for cluster in clusters)  # the workers recovered by themselves
