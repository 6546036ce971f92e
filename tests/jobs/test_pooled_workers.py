"""Workers behind a transaction-mode pooler (`make test-pooled`), and directly connected: how an
idle pusher learns of a new job (LISTEN on its own connection, or polling), and how a worker's
transactions commit."""

import os

import pytest
from django.db import connection, transaction
from prometheus_client import CollectorRegistry, multiprocess

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.models import Job
from devtools.supervisor import ROOT, free_port
from tests.conftest import wait_until
from tests.jobtypes import create_effects_table
from tests.pooler import pooled

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _effects(transactional_db):
    create_effects_table()


def idle_waits(directory, queue: str) -> dict[str, float]:
    """How the idle waits of `queue`'s pushers ended (notify, due, poll), read from the
    metrics its cluster wrote in `directory`."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry, path=str(directory))
    return {
        sample.labels["ended_by"]: sample.value
        for metric in registry.collect()
        if metric.name == "bimride_broker_idle_waits"
        for sample in metric.samples
        if sample.name.endswith("_total") and sample.labels["queue"] == queue
    }


class ClusterLog:
    """What a queue's clusters log from now on (the session's clusters share one file)."""

    def __init__(self, queue: str):
        self.path = ROOT / ".data" / f"qcluster-{queue}-{os.getpid()}.log"
        self.offset = self.path.stat().st_size if self.path.exists() else 0

    def text(self) -> str:
        with open(self.path, errors="replace") as f:
            f.seek(self.offset)
            return f.read()


def test_an_idle_pusher_is_woken_by_the_notify_of_a_new_job(start_cluster, tmp_path):
    """Through the pooler with JOB_LISTEN_DATABASE_URL (and directly connected without it)."""
    log = ClusterLog("default")
    start_cluster("default", PROMETHEUS_MULTIPROC_DIR=tmp_path)  # through the pooler: listen URL
    wait_until(lambda: idle_waits(tmp_path, "default"), what="the pusher to wait, idle")
    assert "queue default waits for new jobs on LISTEN" in log.text()
    assert idle_waits(tmp_path, "default").get("notify", 0) == 0
    job = enqueue("tests.effect_default", {"n": 1})
    wait_until(lambda: Job.objects.get(pk=job.pk).state == "succeeded", what="the job to run")
    assert idle_waits(tmp_path, "default")["notify"] >= 1


def test_behind_the_pooler_without_a_listen_url_pushers_poll_and_jobs_still_run(
    start_cluster, tmp_path
):
    if not pooled():
        pytest.skip("runs only through the pooler (BIMRIDE_TEST_POOLER=1)")
    log = ClusterLog("default")
    start_cluster("default", PROMETHEUS_MULTIPROC_DIR=tmp_path, JOB_LISTEN_DATABASE_URL="")
    wait_until(lambda: idle_waits(tmp_path, "default"), what="the pusher to wait, idle")
    assert "queue default polls every 0.25s for new jobs" in log.text()
    jobs = [enqueue("tests.effect_default", {"n": n}) for n in range(3)]
    wait_until(
        lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], state="succeeded").count() == 3,
        what="the jobs to run",
    )
    waits = idle_waits(tmp_path, "default")
    assert waits.get("notify", 0) == 0 and waits["poll"] >= 1


@pytest.mark.parametrize("async_commit", ["1", "0"])
def test_a_worker_commits_asynchronously_unless_told_not_to_and_requests_never(
    start_cluster, async_commit
):
    start_cluster("default", JOB_ASYNC_COMMIT=async_commit)
    job = enqueue("tests.show_synchronous_commit", {"n": 1})
    wait_until(lambda: Job.objects.get(pk=job.pk).state == "succeeded", what="the job to run")
    expected = "off" if async_commit == "1" else "on"
    assert Job.objects.get(pk=job.pk).result == {"synchronous_commit": expected}
    # This process commits as a web request does, on server sessions the worker used too.
    for _ in range(5):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("SHOW synchronous_commit")
            assert cursor.fetchone() == ("on",)


def test_a_listen_connection_that_fails_leaves_jobs_running(start_cluster, tmp_path):
    """Its database gone (or the URL wrong), the pusher retries it a second later and takes
    the jobs meanwhile."""
    if not pooled():
        pytest.skip("runs only through the pooler (BIMRIDE_TEST_POOLER=1)")
    log = ClusterLog("default")
    nowhere = f"postgresql://nobody@127.0.0.1:{free_port()}/nothing"
    start_cluster("default", PROMETHEUS_MULTIPROC_DIR=tmp_path, JOB_LISTEN_DATABASE_URL=nowhere)
    jobs = [enqueue("tests.effect_default", {"n": n}) for n in range(3)]
    wait_until(
        lambda: Job.objects.filter(pk__in=[j.pk for j in jobs], state="succeeded").count() == 3,
        what="the jobs to run",
    )
    wait_until(lambda: "broker: database unavailable during dequeue" in log.text())
    assert idle_waits(tmp_path, "default").get("notify", 0) == 0
