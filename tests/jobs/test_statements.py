"""What a job run costs the database, counted as the workers send it: the statements of the
pusher's take, the worker's claim and outcome, and the monitor's acknowledgement, through
django-q2's own pusher, worker and monitor loops run in this process."""

import contextlib
import multiprocessing
import tempfile

import pytest
from django.db import connection
from django_q.monitor import monitor
from django_q.pusher import pusher
from django_q.worker import worker
from psycopg import pq

from bimride.jobs.engine.broker import PostgresBroker
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.q2compat import Conf, OrmQ, SignedPackage
from bimride.jobs.models import Job

BATCH = 5


@contextlib.contextmanager
def statements_sent():
    """Count the statements this process's connection sends the server (the protocol's Query and
    Execute messages, BEGIN and COMMIT included), as libpq traces them."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    sent = []
    with tempfile.TemporaryFile("w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield sent
        finally:
            pgconn.untrace()
            trace.seek(0)
            for line in trace:  # a statement's text may span lines: only messages count
                direction, _, kind, *rest = [*line.rstrip("\n").split("\t"), "", ""]
                if direction == "F" and kind in ("Query", "Execute"):
                    sent.append(" ".join([kind, *rest]).strip())


def run_through_cluster(queue: str) -> None:
    """One round of a queue's cluster, in this process: the pusher takes a batch of due jobs,
    a worker runs them, the monitor acknowledges them."""
    tasks, results = multiprocessing.Queue(), multiprocessing.Queue()
    stop = multiprocessing.Event()
    stop.set()  # the pusher takes one batch, then stops
    broker = PostgresBroker(list_key=queue)
    pusher(tasks, stop, broker)
    tasks.put("STOP")
    worker(tasks, results, multiprocessing.Value("f", -1))
    results.put("STOP")
    monitor(results, broker)


@pytest.fixture
def as_a_worker():
    """This connection as a worker process's: no health check before each task."""
    connection.ensure_connection()
    checked, connection.health_check_enabled = connection.health_check_enabled, False
    yield
    connection.health_check_enabled = checked


def enqueue_noops(count: int) -> list[int]:
    return [enqueue("tests.noop").pk for _ in range(count)]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("pooled", [False, True], ids=["direct", "behind a pooler"])
def test_a_job_run_costs_the_workers_four_statements_or_five_behind_a_pooler(
    as_a_worker, settings, pooled
):
    # Behind a transaction-mode pooler each of the worker's transactions also says how it
    # commits (asynchronously): inside the claim's statement, and with a statement of its own
    # at the start of the handler's transaction, whose statements then run as they commit.
    settings.DB_TRANSACTION_POOLER = settings.JOB_ASYNC_COMMIT = pooled
    run_through_cluster("default")  # nothing due: the pusher's take finds nothing
    enqueue_noops(BATCH)
    run_through_cluster("default")  # warm: the statements repeated are prepared
    ids = enqueue_noops(BATCH)

    with statements_sent() as sent:
        run_through_cluster("default")

    assert set(Job.objects.filter(pk__in=ids).values_list("state", flat=True)) == {"succeeded"}
    assert not OrmQ.objects.exists()  # every broker row gone, deleted by the claims
    # The take is one statement per batch; each job: the claim (with its audit event and the
    # broker row's delete), BEGIN, the record of success (with its audit event), COMMIT; the
    # monitor's acknowledgement has nothing left to delete.
    per_job = 5 if pooled else 4
    assert len(sent) == 1 + per_job * BATCH, "\n".join(sent)


@pytest.mark.django_db(transaction=True)
def test_a_pusher_woken_for_a_job_takes_it_and_goes_idle_in_two_statements(
    as_a_worker, monkeypatch
):
    """An idle pusher takes the job it was woken for, and learns when the queue's next row is
    due, in one statement; having taken fewer rows than a batch, it waits before its next take
    (one statement a wait) instead of taking again at once and then asking for the next due
    time (three)."""
    monkeypatch.setattr(Conf, "POLL", 0.05)  # the longest idle wait, short for the test
    broker = PostgresBroker(list_key="default")
    assert broker.dequeue() is None  # idle: listening
    for _ in range(3):
        (job_id,) = enqueue_noops(1)  # committed: its NOTIFY is sent
        with statements_sent() as sent:
            taken = broker.dequeue()  # woken: takes it
            idle = broker.dequeue()  # waits (nothing comes), then finds nothing
        assert [job_of_task(task) for task in taken] == [job_id] and idle is None
        assert len(sent) == 2, "\n".join(sent)


def job_of_task(task: tuple) -> int:
    return SignedPackage.loads(task[1])["args"][0]
