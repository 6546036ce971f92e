"""Conformance of the Tasks backend with the reference (the django-tasks backport's suites and
its database backend's, django-tasks-db): what a backend does in the process that enqueues and
reads results. What a worker does is in test_worker.py; every behaviour the reference suites
check is in one of the two, passing, or skipped with the row of docs/jobs.md's differences table
that says why BimRide does otherwise."""

import dataclasses
import logging
import uuid
from datetime import datetime, timedelta

import psycopg
import pytest
from asgiref.sync import async_to_sync
from django.db import IntegrityError, connection, transaction
from django.test import override_settings
from django.utils import timezone
from django.utils.module_loading import import_string
from django_tasks import (
    DEFAULT_TASK_QUEUE_NAME,
    TaskResultStatus,
    default_task_backend,
    task,
    task_backends,
)
from django_tasks.base import TASK_MAX_PRIORITY, TASK_MIN_PRIORITY, Task, TaskError
from django_tasks.exceptions import (
    InvalidTaskBackendError,
    InvalidTaskError,
    TaskResultDoesNotExist,
    TaskResultMismatch,
)

from bimride.jobs.engine import registry
from bimride.jobs.engine.retry import RetryPolicy
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import Job
from bimride.jobs.tasks_backend import JobBackend, JobTask, MissingTask
from tests.pooler import direct_database_url
from tests.tasks_conformance import tasks
from tests.tasks_conformance.conftest import differs, job_of

pytestmark = pytest.mark.django_db

READY, FAILED = TaskResultStatus.READY, TaskResultStatus.FAILED


def stored_row(path: str, **fields) -> Job:
    """A task's job row as a past release (or another process) left it, written directly."""
    values = {
        "name": path, "queue": "default", "payload": {"args": [], "kwargs": {}},
        "max_attempts": 1, "timeout": 60, "backend": "default",
    } | fields  # fmt: skip
    return Job.objects.create(**values)


# --- the backend --------------------------------------------------------------------------------


def test_the_default_backend_is_this_backend_with_no_options():
    assert default_task_backend == task_backends["default"]
    assert (
        isinstance(task_backends["default"], JobBackend) and default_task_backend.alias == "default"
    )
    assert default_task_backend.options == {}
    assert list(default_task_backend.check()) == []


def test_the_decorator_makes_tasks_with_the_references_defaults():
    for declared in (tasks.noop, tasks.noop_async, tasks.meaning_of_life):
        assert isinstance(declared, Task)
        assert (declared.priority, declared.queue_name, declared.backend) == (
            0,
            "default",
            "default",
        )
        assert declared.run_after is None and not declared.takes_context
    assert tasks.noop.name == "noop" and tasks.noop_async.name == "noop_async"
    assert tasks.noop.module_path == "tests.tasks_conformance.tasks.noop"
    assert import_string(tasks.noop.module_path) is tasks.noop


def test_a_task_the_reference_refuses_is_refused_where_it_is_declared():
    def nested():
        return None

    with pytest.raises(InvalidTaskError, match="Task function must be defined at a module level"):
        task()(nested)
    with pytest.raises(InvalidTaskError, match="Task function must be defined at a module level"):
        task()(any)
    with pytest.raises(InvalidTaskError, match="does not have a first argument of 'context'"):
        task(takes_context=True)(tasks.meaning_of_life.func)


def test_the_check_asks_for_the_job_system_to_be_installed(settings):
    settings.INSTALLED_APPS = [a for a in settings.INSTALLED_APPS if a != "bimride.jobs"]
    (error,) = default_task_backend.check()
    assert error.id == "bimride.jobs.E002" and "bimride.jobs" in error.hint


def test_the_tasks_extras_have_defaults_and_unknown_ones_are_refused():
    plain = task()(tasks.plain_function)
    assert isinstance(plain, JobTask) and isinstance(plain, Task)
    assert (plain.retry, plain.atomic, plain.timeout) == (None, None, 60)
    custom = task(priority=10, queue_name="critical", timeout=5)(tasks.plain_function)
    assert (custom.priority, custom.queue_name, custom.timeout) == (10, "critical", 5)
    assert not custom.takes_context and custom.run_after is None
    assert isinstance(tasks.noop.get_backend(), JobBackend)
    with pytest.raises(TypeError):
        task(unknown_param=123)(tasks.plain_function)


@override_settings(TASKS={})
def test_without_backends_enqueueing_is_an_invalid_backend():
    with pytest.raises(InvalidTaskBackendError):
        tasks.noop.enqueue()


# --- enqueue ------------------------------------------------------------------------------------


@pytest.mark.parametrize("declared", [tasks.noop, tasks.noop_async], ids=["sync", "async"])
def test_enqueue_writes_one_row_and_answers_a_ready_result(
    declared, signals_seen, django_assert_num_queries
):
    with django_assert_num_queries(1):
        result = declared.enqueue(1, two=3)

    assert uuid.UUID(result.id).version == 4
    assert result.status == READY and not result.is_finished and result.attempts == 0
    assert (result.started_at, result.last_attempted_at, result.finished_at) == (None,) * 3
    assert result.enqueued_at is not None
    with pytest.raises(ValueError, match="Task has not finished yet"):
        result.return_value  # noqa: B018
    assert result.task == declared and (result.args, result.kwargs) == ([1], {"two": 3})
    assert result.errors == [] and result.worker_ids == [] and result.backend == "default"
    assert signals_seen == [("enqueued", JobBackend, result.id, READY)]


def test_aenqueue_answers_the_same_result():
    async def enqueue():
        return await tasks.noop.aenqueue()

    result = async_to_sync(enqueue)()
    assert result.status == READY and (result.args, result.kwargs) == ([], {})
    assert default_task_backend.get_result(result.id) == result


@pytest.mark.django_db(transaction=True)
def test_a_task_enqueued_in_a_transaction_is_seen_by_others_once_it_commits():
    with psycopg.connect(direct_database_url(), autocommit=True) as other:
        with transaction.atomic():
            result = tasks.noop.enqueue()
            assert result.enqueued_at is not None and Job.objects.count() == 1
            assert other.execute("SELECT count(*) FROM jobs_job").fetchone() == (0,)
        assert other.execute("SELECT count(*) FROM jobs_job").fetchone() == (1,)


def test_enqueueing_is_logged_with_the_result_id(caplog):
    with caplog.at_level(logging.DEBUG, logger="django_tasks"):
        result = tasks.noop.enqueue()
    (record,) = [r for r in caplog.records if r.name == "django_tasks"]
    assert "enqueued" in record.getMessage() and result.id in record.getMessage()


def test_arguments_json_cannot_hold_are_a_type_error_at_enqueue():
    for enqueue in (tasks.noop.enqueue, async_to_sync(tasks.noop.aenqueue)):
        with pytest.raises(TypeError, match="args\\[0\\] is of type datetime"):
            enqueue(datetime.now())
    assert not Job.objects.exists()


# --- using() ------------------------------------------------------------------------------------


def test_using_makes_a_modified_copy_and_chains():
    now = timezone.now()
    assert tasks.noop.using() == tasks.noop and tasks.noop.using() is not tasks.noop
    assert tasks.noop.using(priority=1).priority == 1 and tasks.noop.priority == 0
    assert tasks.noop.using(queue_name="bulk").queue_name == "bulk"
    assert tasks.noop.queue_name == DEFAULT_TASK_QUEUE_NAME
    assert tasks.noop.using(run_after=now).run_after == now and tasks.noop.run_after is None
    chained = tasks.noop.using(run_after=now).using(priority=10)
    assert (chained.priority, chained.run_after) == (10, now)


@pytest.mark.parametrize(
    "changes, message",
    [
        ({"run_after": datetime.now()}, "run_after must be an aware datetime"),
        ({"priority": TASK_MIN_PRIORITY - 1}, "priority must be a whole number between"),
        ({"priority": TASK_MAX_PRIORITY + 1}, "priority must be a whole number between"),
        ({"priority": 3.1}, "priority must be a whole number between"),
        ({"queue_name": "queue-2"}, "Queue 'queue-2' is not valid for backend"),
    ],
)
def test_using_refuses_what_the_reference_refuses(changes, message):
    with pytest.raises(InvalidTaskError, match=message):
        tasks.noop.using(**changes)
    for priority in (TASK_MIN_PRIORITY, 0, TASK_MAX_PRIORITY):
        tasks.noop.using(priority=priority)


def test_using_an_unknown_or_unimportable_backend_is_an_invalid_backend():
    with pytest.raises(InvalidTaskBackendError, match="The connection 'unknown' doesn't exist"):
        tasks.noop.using(backend="unknown")
    tasks_setting = {"default": {"BACKEND": "bimride.jobs.tasks_backend.JobBackend"}}
    tasks_setting["missing"] = {"BACKEND": "does.not.exist"}
    with (
        override_settings(TASKS=tasks_setting),
        pytest.raises(InvalidTaskBackendError, match="Could not find backend 'does.not.exist'"),
    ):
        tasks.noop.using(backend="missing")


def test_a_queue_outside_the_backends_queues_is_refused_at_enqueue():
    bulk = tasks.noop.using(queue_name="bulk")
    setting = {
        "default": {"BACKEND": "bimride.jobs.tasks_backend.JobBackend", "QUEUES": ["default"]}
    }
    with override_settings(TASKS=setting):
        with pytest.raises(InvalidTaskError, match="Queue 'bulk' is not valid for backend"):
            bulk.enqueue()
        with pytest.raises(InvalidTaskError, match="Queue 'bulk' is not valid for backend"):
            async_to_sync(bulk.aenqueue)()
    assert not Job.objects.exists()


@differs("QUEUES: []", "a queue must be one a worker serves: QUEUES: [] allows any of those")
def test_an_empty_queues_list_accepts_any_queue_name():
    """The reference: QUEUES: [] bypasses the queue check (any name, even one never served)."""


def test_an_empty_queues_list_accepts_any_served_queue_and_no_other():
    setting = {"default": {"BACKEND": "bimride.jobs.tasks_backend.JobBackend", "QUEUES": []}}
    with override_settings(TASKS=setting):
        assert tasks.noop.using(queue_name="bulk").queue_name == "bulk"
        with pytest.raises(InvalidTaskError, match="Queue 'queue-2' has no workers"):
            tasks.noop.using(queue_name="queue-2")


def test_a_queue_no_worker_serves_fails_the_system_check():
    (error,) = JobBackend("other", {"QUEUES": ["default", "queue-1"]}).check()
    assert error.id == "bimride.jobs.E001" and "queue-1" in error.msg


# --- call() -------------------------------------------------------------------------------------


def test_call_runs_the_function_here_sync_or_async():
    assert tasks.meaning_of_life.call() == 42
    assert async_to_sync(tasks.meaning_of_life.acall)() == 42
    assert tasks.noop_async.call() is None and async_to_sync(tasks.noop_async.acall)() is None
    assert not Job.objects.exists()


# --- get_result() -------------------------------------------------------------------------------


def test_get_result_reads_back_what_enqueue_answered_in_one_query(django_assert_num_queries):
    result = tasks.noop.enqueue()
    with django_assert_num_queries(1):
        again = default_task_backend.get_result(result.id)
    assert again == result and tasks.noop.get_result(result.id) == result
    assert async_to_sync(default_task_backend.aget_result)(result.id) == result
    assert async_to_sync(tasks.noop.aget_result)(result.id) == result


def test_refresh_reads_the_ledger_in_one_query(django_assert_num_queries):
    result = tasks.meaning_of_life.enqueue()
    run_job(job_of(result).pk)
    assert result.status == READY and result.attempts == 0  # a result is a snapshot
    with django_assert_num_queries(1):
        result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.is_finished
    assert result.return_value == 42 and result.attempts == 1
    assert None not in (result.started_at, result.last_attempted_at, result.finished_at)

    other = tasks.meaning_of_life.enqueue()
    before = dataclasses.asdict(other)
    async_to_sync(other.arefresh)()
    assert dataclasses.asdict(other) == before  # nothing happened to it meanwhile


@pytest.mark.parametrize("result_id", [str(uuid.uuid4()), "123", "abc", ""])
def test_an_id_that_names_no_result_does_not_exist(result_id):
    tasks.noop.enqueue()
    with pytest.raises(TaskResultDoesNotExist):
        default_task_backend.get_result(result_id)
    with pytest.raises(TaskResultDoesNotExist):
        async_to_sync(default_task_backend.aget_result)(result_id)


def test_a_result_asked_of_another_task_is_a_mismatch():
    result = tasks.noop_async.enqueue()
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        tasks.noop.get_result(result.id)
    with pytest.raises(TaskResultMismatch, match="Task does not match"):
        async_to_sync(tasks.noop.aget_result)(result.id)


def test_result_ids_are_opaque_not_the_ledgers_sequence():
    results = [tasks.noop.enqueue() for _ in range(3)]
    ids = [result.id for result in results]
    assert len(set(ids)) == 3 and all(uuid.UUID(i).version == 4 for i in ids)
    assert not {str(job_of(result).pk) for result in results} & set(ids)


@differs("Result ids", "always a random UUID; no `id_function` option")
def test_options_choose_the_function_making_result_ids():
    """The reference: OPTIONS id_function (a dotted path, a callable or a database function)."""


def test_a_run_after_never_given_reads_back_as_none():
    result = tasks.noop.enqueue()
    assert default_task_backend.get_result(result.id).task.run_after is None


# --- stored results the code no longer matches ---------------------------------------------------


def test_a_result_whose_task_module_is_gone_is_readable_and_says_so():
    job = stored_row("tests.tasks_conformance.module_not_found.vanished")
    result = default_task_backend.get_result(str(job.uid))
    assert isinstance(result.task, MissingTask) and result.status == READY
    assert result.task.module_path == "tests.tasks_conformance.module_not_found.vanished"
    assert result.task.name == "vanished"
    assert "ModuleNotFoundError" in result.task.problem
    with pytest.raises(InvalidTaskError, match="cannot run"):
        result.task.enqueue()
    with pytest.raises(ImportError):
        result.task.call()


@pytest.mark.parametrize(
    "path, problem",
    [
        ("tests.tasks_conformance.tasks.not_defined", "does not define"),
        ("subprocess.check_output", "No job type named 'subprocess.check_output'"),
        ("unexpected_function", "No job type named 'unexpected_function'"),
    ],
)
def test_a_result_naming_no_task_is_readable_and_says_so(path, problem):
    job = stored_row(path, payload={"args": [["exit", "1"]], "kwargs": {}})
    result = default_task_backend.get_result(str(job.uid))
    assert isinstance(result.task, MissingTask) and problem in result.task.problem
    assert result.task.name == path.rsplit(".", 1)[-1]


def test_a_result_written_before_results_had_opaque_ids_keeps_its_integer_id():
    job = stored_row(tasks.noop.module_path)
    Job.objects.filter(pk=job.pk).update(uid=None)
    result = tasks.noop.get_result(str(job.pk))
    assert result.id == str(job.pk) and result.task == tasks.noop
    current = tasks.noop.enqueue()
    with pytest.raises(TaskResultDoesNotExist):  # a job with an opaque id is not read by pk
        default_task_backend.get_result(str(job_of(current).pk))


# --- the ledger's constraints -------------------------------------------------------------------


def test_the_ledger_keeps_priorities_within_the_references_range():
    for priority in (TASK_MIN_PRIORITY - 1, TASK_MAX_PRIORITY + 1):
        with pytest.raises(IntegrityError), transaction.atomic():
            stored_row("x", priority=priority)
    for priority in (TASK_MIN_PRIORITY, 0, TASK_MAX_PRIORITY):
        stored_row("x", priority=priority)
    stored = stored_row("x", priority=3.1)
    stored.refresh_from_db()
    assert stored.priority == 3  # an integer column, as the reference's


@pytest.mark.django_db(transaction=True)
def test_the_query_for_due_jobs_uses_the_live_jobs_index():
    template = job_of(tasks.noop.enqueue())
    fields = {
        f.attname: getattr(template, f.attname)
        for f in Job._meta.concrete_fields
        if not f.primary_key and f.attname != "uid"
    }
    Job.objects.bulk_create(Job(**fields | {"state": "succeeded"}) for _ in range(5000))
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE jobs_job")
    due = Job.objects.filter(
        state__in=["queued", "retrying"], queue="default", run_at__lte=timezone.now()
    )
    assert "job_live_idx" in due.explain()


# --- options: the reference's defaults, and what OPTIONS may ask ----------------------------------


def test_a_task_gets_one_attempt_and_no_transaction_by_default():
    result = tasks.noop.enqueue()
    assert job_of(result).max_attempts == 1
    assert registry.get(tasks.noop.module_path).atomic is False


def test_options_ask_for_retries_and_atomicity():
    backend = JobBackend("retrying", {"OPTIONS": {"retry": {"max_attempts": 4}, "atomic": True}})
    assert backend.retry == RetryPolicy(max_attempts=4) and backend.atomic is True
    policy = RetryPolicy(max_attempts=2, initial=1)
    assert JobBackend("p", {"OPTIONS": {"retry": policy}}).retry is policy


@pytest.mark.parametrize(
    "options, message",
    [
        ({"id_function": "uuid.uuid1"}, "unknown OPTIONS \\['id_function'\\]"),
        ({"retry": {"attempts": 3}}, "OPTIONS retry: "),
    ],
)
def test_options_this_backend_does_not_know_are_refused(options, message):
    with pytest.raises(InvalidTaskBackendError, match=message):
        JobBackend("bad", {"OPTIONS": options})


# --- TaskError ----------------------------------------------------------------------------------


def test_an_error_naming_no_exception_class_says_so():
    error = TaskError(exception_class_path="subprocess.run", traceback="")
    with pytest.raises(ValueError, match="'subprocess.run' does not reference a valid exception"):
        error.exception_class  # noqa: B018
    with pytest.raises(ImportError):
        TaskError(exception_class_path="does.not.exist", traceback="").exception_class  # noqa: B018


def test_timedelta_run_after_is_kept_to_the_microsecond():
    later = timezone.now() + timedelta(hours=1)
    result = tasks.noop.using(run_after=later).enqueue()
    assert default_task_backend.get_result(result.id).task.run_after == later


def test_a_job_delivered_twice_runs_once():
    result = tasks.meaning_of_life.enqueue()
    run_job(job_of(result).pk)
    run_job(job_of(result).pk)  # a duplicate delivery: the claim matches nothing
    result.refresh()
    assert result.status == TaskResultStatus.SUCCESSFUL and result.attempts == 1


@pytest.mark.django_db(transaction=True)
def test_other_connections_see_every_committed_result():
    first, second = tasks.noop.enqueue(), tasks.noop.enqueue()
    with psycopg.connect(direct_database_url(), autocommit=True) as other:
        rows = other.execute("SELECT uid::text FROM jobs_job").fetchall()
    assert {row[0] for row in rows} == {first.id, second.id}


@differs("Pruning", "retention prunes finished jobs daily; there is no prune command")
def test_a_command_prunes_finished_results():
    """The reference: prune_db_task_results with --queue-name, --min-age-days,
    --failed-min-age-days, --dry-run; running and recent tasks kept."""


@differs("Database, admin", "PostgreSQL only: SQLite's and MySQL's locking do not apply")
def test_an_exclusive_transaction_is_taken_on_sqlite():
    """The reference: exclusive_transaction() and connection_requires_manual_exclusive_..."""


@differs("Database, admin", "tasks are jobs in the job admin")
def test_the_results_admin_shows_run_after():
    """The reference: DBTaskResultAdmin shows run_after, empty for none."""
