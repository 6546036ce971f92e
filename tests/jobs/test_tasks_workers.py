"""Django's Tasks API through real `qcluster` processes on real PostgreSQL: a task is a job."""

import os
from datetime import timedelta

import pytest
from django.db import transaction
from django.utils import timezone
from django_tasks import TaskResultStatus
from django_tasks.exceptions import TaskResultDoesNotExist

from bimride.jobs.models import DeadLetter, Job, JobEvent
from tests.conftest import wait_until
from tests.tasktypes import add, email_users, explode, sees_itself_running, sleep_then, whoami

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

READY, RUNNING = TaskResultStatus.READY, TaskResultStatus.RUNNING
SUCCESSFUL, FAILED = TaskResultStatus.SUCCESSFUL, TaskResultStatus.FAILED


def finished(result) -> bool:
    result.refresh()
    return result.is_finished


def test_a_task_enqueued_in_a_transaction_that_rolls_back_leaves_nothing(start_cluster):
    start_cluster("default")
    with pytest.raises(RuntimeError), transaction.atomic():
        doomed = add.enqueue(1, 2)
        raise RuntimeError("the business write failed")
    with pytest.raises(TaskResultDoesNotExist):
        add.get_result(doomed.id)

    kept = add.enqueue(2, 3)  # the workers are up: had the first been pushed, it would run too
    wait_until(lambda: finished(kept), what="the second task to finish")
    assert kept.status == SUCCESSFUL and kept.return_value == 5
    kept_pk = Job.objects.get(uid=kept.id).pk
    assert list(Job.objects.values_list("pk", flat=True)) == [kept_pk]
    assert set(JobEvent.objects.values_list("job_id", flat=True)) == {kept_pk}


def test_a_result_moves_from_ready_through_running_to_successful(start_cluster):
    result = sleep_then.enqueue(1.5, {"done": True})
    start_cluster("default")
    statuses = [result.status]

    def watch() -> bool:
        result.refresh()
        if result.status != statuses[-1]:
            statuses.append(result.status)
        return result.is_finished

    wait_until(watch, timeout=30, interval=0.05, what="the task to finish")
    assert statuses == [READY, RUNNING, SUCCESSFUL]
    assert result.return_value == {"done": True} and result.errors == []
    (worker,) = result.worker_ids
    assert worker.rsplit(":", 1)[1] != str(os.getpid())  # a worker process ran it
    assert result.enqueued_at < result.started_at < result.finished_at


def test_a_raising_task_ends_failed_with_its_errors_and_a_dead_letter(start_cluster):
    start_cluster("default")
    result = explode.enqueue("boom")
    wait_until(lambda: finished(result), what="both attempts to fail")
    assert result.status == FAILED and result.attempts == 2
    assert [e.exception_class_path for e in result.errors] == ["builtins.ValueError"] * 2
    assert "ValueError: boom" in result.errors[-1].traceback
    letter = DeadLetter.objects.get()
    assert letter.job_id == Job.objects.get(uid=result.id).pk and letter.error_class == "ValueError"


def test_run_after_is_honoured_to_the_job_systems_precision(start_cluster):
    start_cluster("default")
    warm = add.enqueue(0, 0)  # lateness is the workers' to show, not their start-up's
    wait_until(lambda: finished(warm), what="the workers to start")
    run_after = timezone.now() + timedelta(seconds=3)
    result = add.using(run_after=run_after).enqueue(1, 2)
    wait_until(lambda: finished(result), what="the deferred task to finish")
    lateness = (result.started_at - run_after).total_seconds()
    assert result.status == SUCCESSFUL and 0 <= lateness < 1.0, lateness


def test_higher_priority_tasks_are_claimed_first(start_cluster):
    with transaction.atomic():  # all waiting before any worker looks
        lows = [sleep_then.enqueue(0, n) for n in range(4)]
        highs = [sleep_then.using(priority=10).enqueue(0, n) for n in range(4)]
        top = sleep_then.using(priority=100).enqueue(0, "top")
    start_cluster("default", workers=1, JOB_CONCURRENCY_DEFAULT="1")  # one attempt at a time
    tasks = Job.objects.filter(name="tests.tasktypes.sleep_then")
    wait_until(
        lambda: tasks.filter(state="succeeded").count() == 9, what="the nine tasks to succeed"
    )
    claimed = list(tasks.order_by("started_at").values_list("pk", flat=True))
    assert claimed == [Job.objects.get(uid=r.id).pk for r in [top, *highs, *lows]]


def test_a_task_written_as_djangos_documentation_writes_one_runs_unchanged(start_cluster):
    start_cluster("default")
    result = email_users.enqueue(
        emails=["user@example.com"], subject="You have a message", message="Hello there!"
    )
    wait_until(lambda: finished(result), what="the email task to finish")
    assert result.status == SUCCESSFUL and result.return_value == 1  # one email sent


def test_coroutine_and_context_tasks_run_in_a_worker(start_cluster):
    start_cluster("default")
    coroutine, context = sees_itself_running.enqueue(0.05), whoami.enqueue("hi")
    wait_until(lambda: finished(coroutine) and finished(context), what="both tasks to finish")
    assert coroutine.status == SUCCESSFUL and coroutine.return_value is True
    assert context.return_value == {"attempt": 1, "result_id": context.id, "tag": "hi"}
