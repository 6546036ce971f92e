"""Many attempts in flight per worker process, through real `qcluster` processes: threads run
a queue's attempts at once, each with its own log context; a SIGKILL with attempts in flight
loses none and doubles none; a stop finishes them; timeouts end an attempt in a thread, and a
thread stuck past its timeout has its process recycled; waiting threads hold no connection."""

import os
import signal

import pytest
from django.db import connection

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.relay import relay
from bimride.jobs.models import DeadLetter, Job
from tests.conftest import wait_until
from tests.jobtypes import create_spans_table, spans

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]


@pytest.fixture(autouse=True)
def _spans(transactional_db):
    create_spans_table()


def states(jobs) -> list[str]:
    return list(Job.objects.filter(pk__in=[j.pk for j in jobs]).values_list("state", flat=True))


def all_in(jobs, state: str) -> bool:
    return states(jobs) == [state] * len(jobs)


def running_pids(jobs) -> set[int]:
    workers = Job.objects.filter(pk__in=[j.pk for j in jobs], state="running")
    return {int(w.rsplit(":", 1)[1]) for w in workers.values_list("worker", flat=True)}


def test_one_worker_process_runs_a_queues_attempts_at_once(start_cluster):
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="8")
    jobs = [enqueue("tests.span", {"n": n, "sleep": 1.5}) for n in range(8)]
    wait_until(lambda: all_in(jobs, "succeeded"), timeout=30, what="the spans")
    seen = spans()
    assert len(seen) == 8 and len({s["pid"] for s in seen}) == 1  # one process
    assert len({s["thread"] for s in seen}) == 8  # a thread each
    assert max(s["started"] for s in seen) < min(s["ended"] for s in seen)  # all at once
    # Each attempt's log lines carry its own job id, whichever thread ran it.
    assert [s["logged_job_id"] for s in seen] == [str(s["job_id"]) for s in seen]


def test_a_queue_of_concurrency_one_runs_one_attempt_per_process(start_cluster):
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="1")
    jobs = [enqueue("tests.span", {"n": n, "sleep": 0.3}) for n in range(3)]
    wait_until(lambda: all_in(jobs, "succeeded"), timeout=30, what="the spans")
    seen = sorted(spans(), key=lambda s: s["started"])
    assert all(a["ended"] <= b["started"] for a, b in zip(seen, seen[1:], strict=False))
    assert {s["thread"] for s in seen} == {"MainThread"}


def test_a_sigkill_with_attempts_in_flight_loses_none_and_doubles_none(start_cluster):
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="6")
    jobs = [enqueue("tests.span", {"n": n, "sleep": 8}) for n in range(6)]
    wait_until(lambda: all_in(jobs, "running"), timeout=20, what="six attempts in flight")
    [pid] = running_pids(jobs)
    os.kill(pid, signal.SIGKILL)

    def rescued():  # the leases (10 s + 1 s grace) run out; the relay hands the jobs back
        relay()
        return all_in(jobs, "succeeded")

    wait_until(rescued, timeout=60, interval=0.5, what="every job to be rescued")
    seen = spans()
    assert sorted(s["job_id"] for s in seen) == sorted(j.pk for j in jobs)  # each once
    assert {s["attempt"] for s in seen} == {2} and pid not in {s["pid"] for s in seen}


def test_a_stopped_worker_finishes_its_attempts_in_flight(start_cluster):
    cluster = start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="4")
    jobs = [enqueue("tests.span", {"n": n, "sleep": 2}) for n in range(4)]
    wait_until(lambda: all_in(jobs, "running"), timeout=20, what="four attempts in flight")
    assert cluster.stop(grace=20)  # SIGTERM: stopped in time, no SIGKILL needed
    assert all_in(jobs, "succeeded")
    assert sorted(s["job_id"] for s in spans()) == sorted(j.pk for j in jobs)
    assert {s["attempt"] for s in spans()} == {1}


def test_an_attempt_past_its_timeout_in_a_thread_fails_as_a_timeout(start_cluster):
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="4")
    slow = enqueue("tests.spin", {"n": 1, "sleep": 5})
    quick = [enqueue("tests.span", {"n": n, "sleep": 0.5}) for n in range(3)]
    wait_until(lambda: states([slow]) == ["dead"], timeout=30, what="both attempts to time out")
    letter = DeadLetter.objects.get(job=slow)
    assert letter.attempts == 2 and letter.error_class == "JobTimeout"
    assert all_in(quick, "succeeded")


def test_a_thread_stuck_past_its_timeout_recycles_its_process(start_cluster):
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="4")
    stuck = enqueue("tests.slow", {"n": 1, "sleep": 20})  # time.sleep: no Python to interrupt
    wait_until(lambda: states([stuck]) == ["running"], timeout=20, what="the stuck attempt")
    [pid] = running_pids([stuck])
    wait_until(lambda: states([stuck]) == ["dead"], timeout=40, what="both attempts to time out")
    letter = DeadLetter.objects.get(job=stuck)
    assert letter.attempts == 2 and letter.error_class == "JobTimeout"
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)  # the process that held it is gone
    later = enqueue("tests.span", {"n": 2, "sleep": 0.1})  # and a new one took its place
    wait_until(lambda: states([later]) == ["succeeded"], timeout=20, what="the next job")


def connections_to_the_test_database() -> int:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
            " AND pid <> pg_backend_pid()"
        )
        return cursor.fetchone()[0]


def test_threads_waiting_on_a_provider_hold_no_connection(start_cluster):
    idle = connections_to_the_test_database()
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="12", JOB_DB_POOL_SIZE="2")
    warm = enqueue("tests.span", {"n": 0, "sleep": 0})
    wait_until(lambda: states([warm]) == ["succeeded"], timeout=20, what="the cluster")
    cluster_alone = connections_to_the_test_database() - idle
    jobs = [enqueue("tests.span", {"n": n, "sleep": 3}) for n in range(12)]
    wait_until(lambda: all_in(jobs, "running"), timeout=20, what="twelve attempts in flight")
    in_flight = connections_to_the_test_database() - idle
    wait_until(lambda: all_in(jobs, "succeeded"), timeout=30, what="the attempts")
    # Twelve threads wait at once, sharing the worker's pool of two: the cluster's connections
    # (sentinel, pusher and its LISTEN, monitor, the pool) grow by at most the pool.
    assert in_flight <= cluster_alone + 2, (cluster_alone, in_flight)
