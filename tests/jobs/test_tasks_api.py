"""Django's Tasks API on the job system, point by point as Django documents it: the backend,
`enqueue()`, `TaskResult`, `get_result()`, `using()`, `call()`, the exceptions, the signals, and
a task as a job in the ledger. Attempts run with `run_job`, as a worker runs them."""

import logging
import re
import signal
from datetime import datetime, timedelta
from decimal import Decimal
from io import StringIO

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.core.management import call_command
from django.db import connection, transaction
from django.test import Client
from django.utils import timezone
from django_tasks import TaskResultStatus, default_task_backend, task, task_backends
from django_tasks.exceptions import (
    InvalidTaskBackendError,
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)
from django_tasks.signals import task_enqueued, task_finished, task_started

from bimride.jobs.engine.broker import PostgresBroker, WorkerTimeout, job_of
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.q2compat import OrmQ
from bimride.jobs.engine.runner import WORKER, run_job
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.ops import selectors, services
from bimride.jobs.tasks_backend import JobBackend, TaskArgumentsError
from bimride.jobs.testing import perform_job
from tests.conftest import wait_until
from tests.pooler import direct_database_url
from tests.tasktypes import (
    OVERRUN_OUTCOMES,
    add,
    explode,
    flaky,
    overruns,
    returns_a_set,
    sees_itself_running,
    whoami,
)

pytestmark = pytest.mark.django_db


def pk_of(result) -> int:
    """The ledger id of a result's job (its result id is the job's opaque id)."""
    return Job.objects.values_list("pk", flat=True).get(uid=result.id)


def run(result) -> None:
    """One attempt of the result's job, as a worker runs it; then read the result again."""
    run_job(pk_of(result))
    result.refresh()


def broker_row(job_id: int) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute("SELECT key, lock, priority, payload FROM django_q_ormq")
        rows = [row for row in cursor.fetchall() if job_of(row[3]) == job_id]
    assert len(rows) == 1
    return rows[0][:3]


def test_the_default_backend_is_the_job_system_and_says_what_it_supports():
    backend = task_backends["default"]
    assert isinstance(backend, JobBackend) and default_task_backend.alias == "default"
    assert backend.supports_defer and backend.supports_get_result
    assert backend.supports_priority and backend.supports_async_task
    assert backend.queues == {"critical", "default", "bulk"}
    assert add.queue_name == "default" and add.priority == 0 and add.backend == "default"
    assert list(backend.check()) == []


def test_queues_without_workers_fail_the_check():
    backend = JobBackend("other", {"QUEUES": ["default", "emails"]})
    (error,) = backend.check()
    assert error.id == "bimride.jobs.E001" and "emails" in error.msg


def test_an_enqueued_task_is_a_ready_result_and_a_queued_job_pushed_with_it():
    result = add.enqueue(1, b=2)

    job = Job.objects.get()
    assert result.id == str(job.uid) and result.task == add and result.backend == "default"
    assert result.status == TaskResultStatus.READY and not result.is_finished
    assert result.enqueued_at == job.created_at
    assert (result.started_at, result.finished_at, result.last_attempted_at) == (None,) * 3
    assert (result.args, result.kwargs) == ([1], {"b": 2})
    assert result.errors == [] and result.worker_ids == [] and result.attempts == 0
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert (job.name, job.queue, job.state, job.backend) == (
        "tests.tasktypes.add", "default", "queued", "default",
    )  # fmt: skip
    assert job.payload == {"args": [1], "kwargs": {"b": 2}}
    assert (job.max_attempts, job.timeout, job.priority) == (1, 60, 0)
    assert broker_row(job.pk) == ("default", job.run_at, 0)


@pytest.mark.django_db(transaction=True)
def test_a_task_is_written_in_the_callers_transaction_and_seen_by_others_at_commit():
    with psycopg.connect(direct_database_url(), autocommit=True) as other:
        with transaction.atomic():
            result = add.enqueue(1, 2)
            assert default_task_backend.get_result(result.id) == result  # its own transaction
            assert other.execute("SELECT count(*) FROM jobs_job").fetchone() == (0,)
        assert other.execute("SELECT count(*) FROM jobs_job").fetchone() == (1,)


def test_enqueueing_is_logged_with_the_result_id(caplog):
    with caplog.at_level(logging.DEBUG, logger="django_tasks"):
        result = add.enqueue(1, 2)
    (record,) = [r for r in caplog.records if r.name == "django_tasks"]
    assert "enqueued" in record.getMessage() and result.id in record.getMessage()


def test_get_result_reads_back_the_result_enqueue_returned():
    result = add.enqueue(1, 2)
    assert default_task_backend.get_result(result.id) == result
    assert add.get_result(result.id) == result


def test_arguments_are_kept_as_json_gives_them_back():
    result = add.enqueue((1, 2), b=[b"bytes", {"k": (3,)}])
    assert result.args == [[1, 2]] and result.kwargs == {"b": ["bytes", {"k": [3]}]}
    assert Job.objects.get().payload == {"args": result.args, "kwargs": result.kwargs}


@pytest.mark.parametrize(
    "args, kwargs, culprit",
    [
        ((timezone.now(),), {}, "args[0] is of type datetime"),
        ((1,), {"b": {"deep": [Decimal("1.5")]}}, "kwargs['b']['deep'][0] is of type Decimal"),
        ((float("nan"), 1), {}, "args[0] is nan"),
        ((b"\xff", 1), {}, "args[0] is bytes that are not UTF-8"),
        ((1,), {"b": {(1, 2): 1}}, "kwargs['b'] has a key of type tuple"),
        ((object(), 1), {}, "args[0] is of type object"),
    ],
)
def test_arguments_json_cannot_hold_are_refused_at_enqueue_and_nothing_is_stored(
    args, kwargs, culprit
):
    with pytest.raises(TypeError, match=re.escape(culprit)) as raised:
        add.enqueue(*args, **kwargs)
    assert isinstance(raised.value, TaskArgumentsError)
    assert "arguments of task tests.tasktypes.add must be JSON-serialisable" in str(raised.value)
    assert not Job.objects.exists() and not OrmQ.objects.exists()


@pytest.mark.parametrize("result_id", ["999999", "abc", "", "-1", "1.5", "²", "9" * 30])
def test_an_unknown_result_id_does_not_exist(result_id):
    add.enqueue(1, 2)
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)


def test_a_job_enqueued_by_its_job_type_is_no_task_result():
    job = enqueue("tests.echo", {})
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(str(job.uid))


def test_a_result_asked_of_another_task_is_a_mismatch():
    result = add.enqueue(1, 2)
    with pytest.raises(TaskResultMismatch):
        whoami.get_result(result.id)


def test_using_makes_a_modified_copy_and_the_job_follows_it():
    later = timezone.now() + timedelta(hours=1)
    modified = add.using(priority=10, queue_name="critical", run_after=later)
    assert (add.priority, add.queue_name, add.run_after) == (0, "default", None)
    assert (modified.priority, modified.queue_name, modified.run_after) == (10, "critical", later)
    assert modified.func is add.func and modified.name == "add"

    result = modified.enqueue(1, 2)
    job = Job.objects.get()
    assert (job.queue, job.priority, job.run_at, job.run_after) == ("critical", 10, later, later)
    assert broker_row(job.pk) == ("critical", later, 10)
    assert add.get_result(result.id) == result and result.task == modified


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"queue_name": "emails"}, "Queue 'emails' is not valid for backend"),
        ({"priority": 101}, "priority must be a whole number between -100 and 100"),
        ({"priority": -101}, "priority must be a whole number between -100 and 100"),
        ({"run_after": datetime(2030, 1, 1)}, "run_after must be an aware datetime"),
    ],
)
def test_using_refuses_what_the_backend_cannot_honour(changes, message):
    with pytest.raises(InvalidTaskError, match=re.escape(message)):
        add.using(**changes)


def test_using_an_unknown_backend_is_an_invalid_backend():
    with pytest.raises(InvalidTaskBackendError):
        add.using(backend="elsewhere")


def test_call_runs_the_function_here_and_enqueues_nothing():
    assert add.call(2, 3) == 5
    assert async_to_sync(add.acall)(2, b=3) == 5
    assert not Job.objects.exists()


def not_at_module_level():
    def inner(tag):
        return tag

    return inner


def without_context(tag):
    return tag


@pytest.mark.parametrize(
    "declare, message",
    [
        (lambda: task(not_at_module_level()), "Task function must be defined at a module level"),
        (lambda: task(takes_context=True)(without_context), "first argument of 'context'"),
        (lambda: task(timeout=0)(without_context), "timeout must be 1..300 seconds"),
        (lambda: task(queue_name="emails")(without_context), "Queue 'emails' is not valid"),
    ],
)
def test_a_task_the_backend_cannot_run_is_refused_where_it_is_declared(declare, message):
    with pytest.raises(InvalidTaskError, match=re.escape(message)):
        declare()


def test_a_task_runs_as_a_job_and_its_result_says_so():
    result = add.enqueue(2, 3)
    run(result)

    job = Job.objects.get()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.is_finished
    assert result.return_value == 5 == job.result
    assert result.worker_ids == [WORKER] and result.attempts == 1 and result.errors == []
    assert result.started_at == result.last_attempted_at == job.started_at
    assert result.enqueued_at <= result.started_at <= result.finished_at == job.finished_at


def test_a_task_runs_in_a_test_as_a_worker_runs_it():
    assert perform_job("tests.tasktypes.add", {"args": [(1,)], "kwargs": {"b": [2]}}) == [1, 2]
    assert perform_job("tests.tasktypes.whoami", {"kwargs": {"tag": "t"}})["attempt"] == 1


def test_a_task_that_takes_context_gets_its_attempt_and_result_id():
    result = whoami.enqueue("hello")
    run(result)
    assert result.return_value == {"attempt": 1, "result_id": result.id, "tag": "hello"}


def test_a_failed_attempt_is_an_error_with_class_path_and_traceback_and_is_retried():
    result = flaky.enqueue(fail_times=1)
    run(result)
    assert result.status == TaskResultStatus.READY and Job.objects.get().state == "retrying"
    (error,) = result.errors
    assert error.exception_class_path == "builtins.RuntimeError"
    assert error.exception_class is RuntimeError
    assert "planned failure of attempt 1" in error.traceback and "Traceback" in error.traceback

    run(result)  # the retry is due within the second a claim allows ahead
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value == 2
    assert len(result.errors) == 1 and result.worker_ids == [WORKER, WORKER]
    assert result.started_at < result.last_attempted_at


def test_a_task_that_keeps_failing_ends_failed_with_a_dead_letter():
    result = explode.enqueue("boom")
    run(result)
    run(result)

    assert result.status == TaskResultStatus.FAILED and result.is_finished
    assert [e.exception_class for e in result.errors] == [ValueError, ValueError]
    assert all("ValueError: boom" in e.traceback for e in result.errors)
    assert result.finished_at is not None and result.attempts == 2
    with pytest.raises(ValueError, match="Task failed"):
        result.return_value  # noqa: B018
    letter = DeadLetter.objects.get()
    assert (letter.name, letter.error_class, letter.attempts) == (
        "tests.tasktypes.explode", "ValueError", 2,
    )  # fmt: skip


def test_a_return_value_json_cannot_hold_fails_the_task_without_retries():
    result = returns_a_set.enqueue()
    run(result)
    assert result.status == TaskResultStatus.FAILED and result.attempts == 1
    assert (
        result.errors[0].exception_class_path == "bimride.jobs.tasks_backend.TaskReturnValueError"
    )


def test_a_coroutine_function_runs_to_completion_with_the_database():
    result = sees_itself_running.enqueue(0.01)
    run(result)
    assert result.status == TaskResultStatus.SUCCESSFUL and result.return_value is True


@pytest.fixture
def worker_time_limit():
    """SIGALRM raises WorkerTimeout here, as it does in a django-q2 worker."""

    def expire(signum, frame):
        raise WorkerTimeout("Task exceeded maximum timeout value")

    previous = signal.signal(signal.SIGALRM, expire)
    yield
    signal.signal(signal.SIGALRM, previous)


def test_a_coroutine_past_its_time_limit_fails_and_is_cancelled(worker_time_limit):
    OVERRUN_OUTCOMES.clear()
    result = overruns.enqueue(30)
    run(result)
    assert result.status == TaskResultStatus.FAILED
    assert result.errors[0].exception_class_path == "django_q.exceptions.TimeoutException"
    wait_until(lambda: OVERRUN_OUTCOMES, timeout=5, what="the coroutine to end")
    assert OVERRUN_OUTCOMES == ["cancelled"]


def test_a_cancelled_task_is_failed_without_errors():
    result = add.enqueue(1, 2)
    services.job_cancel(job_id=pk_of(result))
    result.refresh()
    assert result.status == TaskResultStatus.FAILED and result.errors == []


def test_signals_follow_a_task_from_enqueue_to_its_outcome():
    seen = []

    def receiver(signal_name):
        def receive(sender, task_result, **kwargs):
            seen.append((signal_name, sender, task_result.id, task_result.status))

        return receive

    receivers = {
        task_enqueued: receiver("enqueued"),
        task_started: receiver("started"),
        task_finished: receiver("finished"),
    }
    for sent, receive in receivers.items():
        sent.connect(receive)
    try:
        ok, failing = add.enqueue(1, 2), explode.enqueue("boom")
        run(ok)
        run(failing)
        run(failing)
    finally:
        for sent, receive in receivers.items():
            sent.disconnect(receive)
    assert [(name, status) for name, _, _, status in seen] == [
        ("enqueued", "READY"), ("enqueued", "READY"),
        ("started", "RUNNING"), ("finished", "SUCCESSFUL"),
        ("started", "RUNNING"), ("started", "RUNNING"), ("finished", "FAILED"),
    ]  # fmt: skip
    assert {sender for _, sender, _, _ in seen} == {JobBackend}
    assert [result_id for _, _, result_id, _ in seen][-1] == failing.id


def test_a_dead_task_retried_from_the_admin_runs_again_in_its_queue_at_its_priority(staff):
    result = explode.using(priority=7, queue_name="bulk").enqueue("boom")
    run(result)
    run(result)
    letter = DeadLetter.objects.get()
    admin = Client()
    admin.force_login(staff)
    url = f"/admin/jobs/deadletter/{letter.pk}/retry-edited/"

    refused = admin.post(url, {"payload": '{"args": "not a list"}'})
    assert "does not fit this job" in refused.content.decode() and Job.objects.count() == 1
    assert admin.post(url, {"payload": '{"args": ["fixed"], "kwargs": {}}'}).status_code == 302

    letter.refresh_from_db()
    again = letter.retry_job
    assert (again.name, again.queue, again.priority, again.backend) == (
        "tests.tasktypes.explode", "bulk", 7, "default",
    )  # fmt: skip
    retried = explode.get_result(str(again.uid))
    assert retried.status == TaskResultStatus.READY and retried.args == ["fixed"]
    assert retried.task.priority == 7 and broker_row(again.pk)[::2] == ("bulk", 7)
    page = admin.get("/admin/jobs/job/?backend=default").content.decode()
    assert f"/admin/jobs/job/{again.pk}/change/" in page


def test_a_tasks_job_shows_in_the_api_the_command_line_the_queues_and_the_metrics(
    as_staff, settings
):
    result = add.using(queue_name="bulk").enqueue(1, 2)

    body = as_staff.get(f"/api/jobs/{result.id}").json()
    assert (body["name"], body["queue"], body["state"], body["priority"]) == (
        "tests.tasktypes.add", "bulk", "queued", 0,
    )  # fmt: skip
    assert body["uid"] == result.id and body["id"] == pk_of(result)
    assert as_staff.get(f"/api/jobs/{pk_of(result)}").json() == body  # its integer id too
    out = StringIO()
    call_command("jobs", "list", "--name", "tests.tasktypes.add", stdout=out)
    assert f"#{pk_of(result)}" in out.getvalue()
    bulk = next(q for q in selectors.queue_stats() if q["queue"] == "bulk")
    assert bulk["depth"]["queued"] == 1

    run(result)
    settings.METRICS_TOKEN = "t0ken"
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
    assert 'bimride_job_attempts_total{job="tests.tasktypes.add",queue="bulk"}' in text


def test_enqueue_get_result_and_refresh_have_async_forms():
    async def flow():
        result = await add.aenqueue(1, 2)
        read = await default_task_backend.aget_result(result.id)
        mine = await add.aget_result(result.id)
        await result.arefresh()
        return result, read, mine

    result, read, mine = async_to_sync(flow)()
    assert result == read == mine and result.status == TaskResultStatus.READY


@pytest.mark.django_db(transaction=True)  # the broker compares due times with now()
def test_the_broker_hands_out_a_queues_due_jobs_highest_priority_first():
    now = timezone.now()
    low = add.enqueue(1, 2)
    high = add.using(priority=50).enqueue(1, 2)
    later_high = add.using(priority=50, run_after=now - timedelta(seconds=1)).enqueue(1, 2)
    negative = add.using(priority=-5).enqueue(1, 2)
    add.using(priority=100, run_after=now + timedelta(hours=1)).enqueue(1, 2)  # not due
    add.using(priority=100, queue_name="critical").enqueue(1, 2)  # another queue

    taken = PostgresBroker(list_key="default").dequeue()
    assert [job_of(payload) for _, payload in taken] == [
        pk_of(r) for r in (later_high, high, low, negative)
    ]
