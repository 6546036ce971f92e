"""Conformance of the workers with the reference's (django-tasks-db's db_worker): tasks run by real
`qcluster` processes on real PostgreSQL, their results, failures of every kind, signals to the
worker, logging. A few checks read log records, which only the running process holds: those
run the attempt here with `run_job`, as a worker does."""

import logging
import signal
import time
from datetime import timedelta

import psycopg
import pytest
from django.test import override_settings
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task

from bimride.jobs.engine import broker, registry, shutdown
from bimride.jobs.engine.relay import relay
from bimride.jobs.engine.retry import RetryPolicy
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.tasks_backend import JobBackend
from tests.conftest import wait_until
from tests.jobtypes import create_effects_table, effects
from tests.pooler import direct_database_url
from tests.tasks_conformance import tasks
from tests.tasks_conformance.conftest import differs, finished, job_of

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def wait_finished(*results, timeout: float = 20.0) -> None:
    wait_until(lambda: all(finished(r) for r in results), timeout=timeout, what="the tasks")


def wait_running(result) -> None:
    def running() -> bool:
        result.refresh()
        return result.status == RUNNING

    wait_until(running, what="the task to start")


def assert_failed_with(result, exception: type[BaseException], ending: str) -> None:
    assert result.status == FAILED and result.is_finished and result.attempts == 1
    assert result.enqueued_at <= result.started_at <= result.finished_at
    assert result.last_attempted_at == result.started_at
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    (error,) = result.errors
    assert error.exception_class is exception
    assert error.traceback.endswith(ending), error.traceback


def stored_and_pushed(path: str, payload: dict) -> Job:
    """A task's job as another release left it (its task since gone), pushed to its queue."""
    job = Job.objects.create(
        name=path, queue="default", payload=payload, max_attempts=1, timeout=60,
        backend="default",
    )  # fmt: skip
    broker.push([job])
    return job


# --- running tasks ------------------------------------------------------------------------------


def test_a_worker_runs_enqueued_tasks_sync_and_async(start_cluster):
    results = [tasks.noop.enqueue(), tasks.noop_async.enqueue(), tasks.meaning_of_life.enqueue()]
    assert all(r.status == READY and r.attempts == 0 for r in results)
    start_cluster("default")
    wait_finished(*results)
    for result in results:
        assert result.status == SUCCESSFUL and result.attempts == 1 and result.errors == []
        assert result.enqueued_at <= result.started_at <= result.finished_at
        (worker,) = result.worker_ids
        assert worker and len(worker) <= 100
    assert results[2].return_value == 42


def test_a_worker_runs_every_due_task_and_a_failure_does_not_stop_the_rest(start_cluster):
    results = [tasks.noop.enqueue() for _ in range(3)] + [tasks.raises_value_error.enqueue()]
    start_cluster("default", workers=1)
    wait_finished(*results)
    assert [r.status for r in results] == [SUCCESSFUL] * 3 + [FAILED]


def test_a_raising_task_fails_after_one_attempt_with_its_error(start_cluster):
    result = tasks.raises_value_error.enqueue("This task failed due to ValueError")
    start_cluster("default")
    wait_finished(result)
    assert_failed_with(result, ValueError, "ValueError: This task failed due to ValueError\n")
    assert DeadLetter.objects.get().job_id == job_of(result).pk


def test_an_exception_holding_an_exception_is_recorded_whole(start_cluster):
    result = tasks.raises_nested_exception.enqueue()
    start_cluster("default")
    wait_finished(result)
    assert_failed_with(result, ValueError, "ValueError: the inner error\n")
    assert 'ValueError(ValueError("the inner error"))' in result.errors[0].traceback


def test_a_return_value_json_cannot_hold_fails_the_task_as_a_type_error(start_cluster):
    result = tasks.returns_a_function.enqueue()
    start_cluster("default")
    wait_finished(result)
    assert result.status == FAILED and result._return_value is None
    assert issubclass(result.errors[0].exception_class, TypeError)
    assert "Unsupported type" in result.errors[0].traceback


def test_a_task_that_takes_context_gets_its_result_and_attempt(start_cluster):
    own_id, context = tasks.own_result_id.enqueue(), tasks.checks_context.enqueue(1)
    start_cluster("default")
    wait_finished(own_id, context)
    assert own_id.return_value == own_id.id
    assert context.status == SUCCESSFUL and context.return_value == context.worker_ids[0]


def test_a_task_asking_for_retries_gets_them(start_cluster):
    result = tasks.fails_until.enqueue(2)
    start_cluster("default")
    wait_finished(result)
    assert result.status == SUCCESSFUL and result.return_value == 2 and result.attempts == 2
    assert [e.exception_class for e in result.errors] == [RuntimeError]


def test_a_task_runs_outside_a_transaction_unless_it_asks_for_one(start_cluster):
    create_effects_table()
    wrapped, unwrapped = (
        tasks.writes_then_fails.enqueue(1),
        tasks.writes_then_fails_unwrapped.enqueue(2),
    )
    start_cluster("default")
    wait_finished(wrapped, unwrapped)
    assert wrapped.status == unwrapped.status == FAILED
    assert effects() == [(2, 1)]  # the atomic task's write was rolled back with its failure


# --- queues, backends, run_after, priorities ---------------------------------------------


def test_a_worker_runs_only_its_own_queues_tasks(start_cluster):
    bulk = tasks.noop.using(queue_name="bulk").enqueue()
    default = tasks.noop.enqueue()
    start_cluster("default")
    wait_finished(default)
    time.sleep(1)  # time enough for a wrong worker to have taken it too
    bulk.refresh()
    assert bulk.status == READY
    start_cluster("bulk")
    wait_finished(bulk)
    assert bulk.status == SUCCESSFUL


@differs("Workers", "a cluster serves one queue (Q_CLUSTER_NAME), every backend's tasks on it")
def test_a_worker_takes_queue_and_backend_options():
    """The reference: --queue-name a,b or '*', --exclude-queues, --backend; an unknown backend or
    one that is not a database backend refused."""


@differs("Workers", "qcluster runs until stopped; django-q2's Q_RECYCLE recycles a worker")
def test_a_worker_takes_batch_max_tasks_interval_and_worker_id_options():
    """The reference: --batch exits when idle, --max-tasks, --interval (finite, > 0), and
    --worker-id (not empty, at most 64 characters)."""


def test_a_deferred_task_waits_for_its_run_after(start_cluster):
    far = tasks.noop.using(run_after=timezone.now() + timedelta(hours=10)).enqueue()
    run_after = timezone.now() + timedelta(seconds=2)
    near = tasks.noop.using(run_after=run_after).enqueue()
    start_cluster("default")
    wait_finished(near)
    assert near.status == SUCCESSFUL and near.started_at >= run_after
    far.refresh()
    assert far.status == READY


def test_due_tasks_run_highest_priority_first_then_oldest_run_after(start_cluster):
    now = timezone.now()
    old = tasks.noop.using(priority=20, run_after=now - timedelta(hours=2)).enqueue()
    very_old = tasks.noop.using(priority=20, run_after=now - timedelta(hours=10)).enqueue()
    far_future = tasks.noop.using(run_after=now + timedelta(hours=10)).enqueue()
    high_far_future = tasks.noop.using(priority=10, run_after=now + timedelta(hours=10)).enqueue()
    high = tasks.noop.using(priority=10).enqueue()
    low = tasks.noop.using(priority=2).enqueue()
    lower = tasks.noop.using(priority=-2).enqueue()
    # One attempt at a time, as the reference's worker runs them: with threads they are taken
    # in this order but run side by side (docs/jobs.md, 'Differences from the reference').
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="1")
    due = [very_old, old, high, low, lower]
    wait_finished(*due)
    assert sorted(due, key=lambda r: r.started_at) == due
    for result in (far_future, high_far_future):
        result.refresh()
        assert result.status == READY


def test_a_job_row_locked_elsewhere_does_not_hold_up_other_tasks(start_cluster):
    locked = tasks.noop.enqueue()
    with psycopg.connect(direct_database_url()) as other:
        other.execute("SELECT id FROM jobs_job WHERE uid = %s FOR UPDATE", [locked.id])
        free = tasks.noop.enqueue()
        start_cluster("default", workers=2)
        wait_finished(free)
        locked.refresh()
        assert locked.status in (READY, RUNNING) and not locked.is_finished
    wait_finished(locked)  # once the lock is gone
    assert locked.status == SUCCESSFUL


def test_tasks_spread_over_several_workers_each_run_once(start_cluster):
    results = [tasks.sleeps.enqueue(0.1) for _ in range(10)]
    for _ in range(3):
        start_cluster("default", workers=1)
    wait_finished(*results)
    assert all(r.status == SUCCESSFUL and len(r.worker_ids) == 1 for r in results)


# --- failures of every kind -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "declared, exception, ending",
    [
        (tasks.raises_system_exit, SystemExit, "SystemExit: the task asked to exit\n"),
        (
            tasks.raises_keyboard_interrupt,
            KeyboardInterrupt,
            "KeyboardInterrupt: the task pressed Ctrl-C\n",
        ),
        (tasks.calls_exit, SystemExit, "SystemExit: 1\n"),
    ],
    ids=["SystemExit", "KeyboardInterrupt", "exit"],
)
def test_a_task_raising_to_stop_fails_and_its_worker_carries_on(
    start_cluster, declared, exception, ending
):
    result = declared.enqueue()
    start_cluster("default", workers=1)
    wait_finished(result)  # well within the lease: the worker recorded it itself
    assert_failed_with(result, exception, ending)
    after = tasks.meaning_of_life.enqueue()
    wait_finished(after)
    assert after.status == SUCCESSFUL and after.worker_ids == result.worker_ids  # same process


@pytest.mark.parametrize(
    "path, says",
    [
        ("tests.tasks_conformance.gone.vanished", "ModuleNotFoundError: No module named"),
        ("tests.tasks_conformance.tasks.some_test", "ImportError: Module"),
        ("subprocess.check_output", "No job type named 'subprocess.check_output'"),
    ],
    ids=["module gone", "function gone", "not a task"],
)
def test_a_task_that_cannot_be_imported_fails_and_dead_letters_saying_why(
    start_cluster, path, says
):
    job = stored_and_pushed(path, {"args": [["touch", "/tmp/ran"]], "kwargs": {}})
    start_cluster("default")
    result = default_task_backend.get_result(str(job.uid))
    wait_finished(result)
    assert result.status == FAILED and result.task.module_path == path
    (error,) = result.errors
    assert error.exception_class_path == "bimride.jobs.engine.errors.UnknownJob"
    assert says in error.traceback
    letter = DeadLetter.objects.get(job_id=job.pk)
    assert letter.error_class == "UnknownJob" and says in letter.traceback
    assert f"No job type named {path!r}" in letter.error_message


def test_a_killed_worker_leaves_its_task_running_until_its_lease_ends_then_failed(start_cluster):
    result = tasks.hangs_briefly.enqueue()  # a 3 s time limit: a short lease
    cluster = start_cluster("default", workers=1)
    wait_running(result)
    cluster.kill()
    assert cluster.returncode == -signal.SIGKILL
    result.refresh()
    assert result.status == RUNNING  # as the reference leaves it
    # the reference leaves it so for good; here the lease ends and the relay hands it out again
    wait_until(lambda: relay()["orphaned"], timeout=20, what="the lease to end")
    start_cluster("default", workers=1)
    wait_finished(result)
    assert result.status == FAILED and result.errors[-1].exception_class_path.endswith("WorkerLost")


# --- signals to the worker ------------------------------------------------------------------------


def test_a_stop_signal_to_an_idle_worker_stops_it(start_cluster):
    cluster = start_cluster("default")
    warm = tasks.noop.enqueue()
    wait_finished(warm)
    cluster.process.send_signal(signal.SIGTERM)
    assert cluster.process.wait(timeout=15) == 0


@pytest.mark.parametrize("sent", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_stop_signal_lets_the_running_task_finish_then_stops(start_cluster, sent):
    result = tasks.sleeps.enqueue(2)
    cluster = start_cluster("default", workers=1)
    wait_running(result)
    cluster.process.send_signal(sent)
    assert cluster.process.wait(timeout=20) == 0
    result.refresh()
    assert result.status == SUCCESSFUL


def test_a_second_ctrl_c_stops_the_running_task_at_once(start_cluster):
    result = tasks.hangs.enqueue()
    cluster = start_cluster("default", workers=1)
    wait_running(result)
    cluster.process.send_signal(signal.SIGINT)
    time.sleep(0.5)
    assert cluster.alive()
    result.refresh()
    assert result.status == RUNNING and len(result.worker_ids) == 1

    cluster.process.send_signal(signal.SIGINT)
    assert cluster.process.wait(timeout=20) == 0
    result.refresh()
    assert result.status == FAILED and result.errors[0].exception_class is SystemExit
    assert "Stopped by SIGTERM" in result.errors[0].traceback


def test_a_real_ctrl_c_stops_the_process_where_a_tasks_own_keyboard_interrupt_does_not():
    own = tasks.raises_keyboard_interrupt.enqueue()
    run_job(job_of(own).pk)  # Python's own SIGINT handler here: nothing told this process to stop
    own.refresh()
    assert own.status == FAILED and own.errors[0].exception_class is KeyboardInterrupt

    real = tasks.interrupts_its_process.enqueue()
    with pytest.raises(KeyboardInterrupt), shutdown.obeying_stop_signals():  # as runjob --sync
        run_job(job_of(real).pk)
    real.refresh()
    assert real.status == FAILED and real.errors[0].exception_class is KeyboardInterrupt
    assert (
        signal.getsignal(signal.SIGINT) is signal.default_int_handler and not shutdown.requested()
    )


# --- logging --------------------------------------------------------------------------------------


def test_the_worker_logs_each_task_starting_and_its_outcome(start_cluster):
    ok, failing = tasks.noop.enqueue(), tasks.raises_value_error.enqueue("logged")
    cluster = start_cluster("default", workers=1)
    wait_finished(ok, failing)
    cluster.stop()
    log = cluster.log_path.read_text()
    for result, outcome in ((ok, "SUCCESSFUL"), (failing, "FAILED")):
        path = result.task.module_path
        assert f"Task id={result.id} path={path} state=RUNNING" in log
        assert f"Task id={result.id} path={path} state={outcome}" in log
    failure = log[log.index(f"Task id={failing.id} path=tests.tasks_conformance.tasks.raises") :]
    assert "Traceback (most recent call last)" in failure and "ValueError: logged" in failure


def test_the_log_records_of_a_task_and_its_failure_carry_the_exception(caplog):
    with caplog.at_level(logging.DEBUG):
        ok, failing = tasks.noop.enqueue(), tasks.raises_value_error.enqueue("recorded")
        run_job(job_of(ok).pk)
        run_job(job_of(failing).pk)
    records = [r for r in caplog.records if r.name == "django_tasks"]
    assert [r.getMessage().rsplit(" ", 1)[-1] for r in records] == [
        "backend=default", "backend=default", "state=RUNNING", "state=SUCCESSFUL",
        "state=RUNNING", "state=FAILED",
    ]  # fmt: skip
    assert all(ok.id in r.getMessage() for r in records[2:4])
    assert records[3].exc_info in (None, (None, None, None))
    failed = records[-1]
    assert failed.levelno == logging.ERROR and failing.id in failed.getMessage()
    assert isinstance(failed.exc_info[1], ValueError) and str(failed.exc_info[1]) == "recorded"
    (dead,) = [r for r in caplog.records if r.getMessage().startswith("job dead after")]
    assert isinstance(dead.exc_info[1], ValueError)


def test_options_set_the_attempts_and_transaction_of_tasks_without_their_own():
    options = {"retry": {"max_attempts": 3, "initial": 0.01, "max_delay": 0.01}, "atomic": True}
    backend = {"BACKEND": "bimride.jobs.tasks_backend.JobBackend", "OPTIONS": options}
    with override_settings(TASKS={"default": backend}):
        declared = task()(tasks.plain_function_under_options)
        result = declared.enqueue()
        job_type = registry.get(declared.module_path)
        assert job_type.retry == RetryPolicy(**options["retry"]) and job_type.atomic is True
        assert job_of(result).max_attempts == 3


def test_signals_follow_each_attempt_sent_by_the_backend(signals_seen):
    ok, failing = tasks.noop.enqueue(), tasks.raises_system_exit.enqueue()
    run_job(job_of(ok).pk)
    run_job(job_of(failing).pk)
    assert [(name, result_id, status) for name, _, result_id, status in signals_seen] == [
        ("enqueued", ok.id, READY), ("enqueued", failing.id, READY),
        ("started", ok.id, RUNNING), ("finished", ok.id, SUCCESSFUL),
        ("started", failing.id, RUNNING), ("finished", failing.id, FAILED),
    ]  # fmt: skip
    assert {sender for _, sender, _, _ in signals_seen} == {JobBackend}
