"""Django's Tasks API (the django-tasks backport, `django.tasks` in Django 6.0) on the job system.

`TASKS = {"default": {"BACKEND": "bimride.jobs.tasks_backend.JobBackend", "QUEUES": [...]}}` makes
every `@task` a BimRide job. Declaring a task registers a job type named by the function's module
path, run by the one runner like any job (`run_task`). `Task.enqueue()` writes the Job row
(payload `{"args": [...], "kwargs": {...}}`, the task's queue, priority and due time) with
`enqueue()`: in the caller's transaction, pushed at commit. A `TaskResult` is read from the
ledger, in one query: the job's row for its state, times and return value, its audit events
for the worker and the error of each attempt. The result id is the job's opaque id (`uid`).

As the reference backends do, a task gets one attempt and no wrapping transaction, unless it
asks for more (`@task(retry=RetryPolicy(...), atomic=True)`) or its backend's OPTIONS do
(`{"retry": {"max_attempts": 5}, "atomic": True}`); the project's own `@job` types keep theirs.
"""

import asyncio
import contextlib
import json
import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from inspect import iscoroutinefunction
from types import NoneType

from asgiref.sync import async_to_sync
from django.apps import apps
from django.conf import settings
from django.contrib.postgres.expressions import ArraySubquery
from django.core import checks
from django.db.models import OuterRef, Q
from django.db.models.functions import JSONObject
from django_tasks import TaskContext, TaskResult, TaskResultStatus, task_backends
from django_tasks.backends.base import BaseTaskBackend
from django_tasks.base import Task, TaskError
from django_tasks.exceptions import (
    InvalidTaskBackendError,
    InvalidTaskError,
    TaskResultDoesNotExist,
)
from django_tasks.signals import task_enqueued, task_finished, task_started
from django_tasks.utils import normalize_json
from rest_framework import serializers

from bimride.errors import PermanentError
from bimride.jobs.engine import registry
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.errors import UnknownJob
from bimride.jobs.engine.registry import JobContext, JobType
from bimride.jobs.engine.retry import TASK_RETRY, RetryPolicy
from bimride.jobs.models import Job, JobEvent

TASK_TIMEOUT = 60  # seconds per attempt, unless a task declares its own
NAME_MAX = Job._meta.get_field("name").max_length

# A job's state as the Tasks API says it. A job waiting to be retried is ready to run again;
# a cancelled one never ran to completion.
STATUS = {
    Job.State.QUEUED: TaskResultStatus.READY,
    Job.State.RETRYING: TaskResultStatus.READY,
    Job.State.RUNNING: TaskResultStatus.RUNNING,
    Job.State.SUCCEEDED: TaskResultStatus.SUCCESSFUL,
    Job.State.DEAD: TaskResultStatus.FAILED,
    Job.State.CANCELLED: TaskResultStatus.FAILED,
}


class TaskArgumentsError(TypeError):
    """Arguments that would not survive a JSON round trip; raised at enqueue, nothing stored."""


class TaskReturnValueError(PermanentError, TypeError):
    """A task returned what JSON cannot hold: the attempt fails for good (no retry mends it)."""

    code = "task_return_value"


@dataclass(frozen=True, slots=True, kw_only=True)
class JobTask(Task):
    """A task on the job system. Its extras are optional and for this backend only: `retry`
    (the policy of its attempts) and `atomic` (run in one transaction with the record of its
    success), by default its backend's OPTIONS; `timeout` (seconds per attempt)."""

    retry: RetryPolicy | None = None
    timeout: int = TASK_TIMEOUT
    atomic: bool | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class MissingTask(JobTask):
    """The task of a stored result whose function a deploy removed (or that names no task): the
    result stays readable, and `problem` says what is wrong. It cannot run nor be enqueued."""

    path: str
    problem: str

    def __post_init__(self) -> None:
        pass  # nothing to validate: it only describes a stored result

    @property
    def name(self) -> str:
        return self.path.rsplit(".", 1)[-1]

    @property
    def module_path(self) -> str:
        return self.path


def missing_task(*args, **kwargs):
    """The function of a MissingTask: calling it says why there is none."""
    raise ImportError("This task's function cannot be imported.")


class TaskPayload(serializers.Serializer):
    """A task's stored call: what the worker passes to the function (also an edited retry)."""

    args = serializers.ListField(default=list)
    kwargs = serializers.DictField(default=dict)


class JobBackend(BaseTaskBackend):
    """Tasks as BimRide jobs: ledger row in the caller's transaction, claimed once, retried,
    dead-lettered, visible in the admin, the API, `manage.py jobs` and the metrics."""

    task_class = JobTask
    supports_defer = True  # run_after is the job's due time
    supports_async_task = True  # a coroutine function runs to completion in the worker
    supports_get_result = True  # from the ledger, in any process
    supports_priority = True  # the claim order within a queue

    def __init__(self, alias: str, params: dict) -> None:
        super().__init__(alias, params)
        unknown = sorted(set(self.options) - {"retry", "atomic"})
        if unknown:
            raise InvalidTaskBackendError(f"TASKS[{alias!r}] has unknown OPTIONS {unknown}.")
        retry = self.options.get("retry", TASK_RETRY)
        try:
            self.retry = retry if isinstance(retry, RetryPolicy) else RetryPolicy(**retry)
        except TypeError as error:
            raise InvalidTaskBackendError(f"TASKS[{alias!r}] OPTIONS retry: {error}") from None
        self.atomic = bool(self.options.get("atomic", False))

    def validate_task(self, task: Task) -> None:
        if isinstance(task, MissingTask):
            raise InvalidTaskError(f"Task {task.path} cannot run: {task.problem}")
        super().validate_task(task)
        if task.queue_name not in settings.JOB_QUEUES:
            raise InvalidTaskError(
                f"Queue {task.queue_name!r} has no workers; queues are {settings.JOB_QUEUES}."
            )
        if task.func.__module__ == "__main__" or len(task.module_path) > NAME_MAX:
            raise InvalidTaskError(
                f"A worker must import the task by its module path (at most {NAME_MAX}"
                f" characters): {task.module_path!r} will not do."
            )
        timeout = getattr(task, "timeout", TASK_TIMEOUT)
        if not 1 <= timeout <= settings.JOB_MAX_TIMEOUT:
            raise InvalidTaskError(f"timeout must be 1..{settings.JOB_MAX_TIMEOUT} seconds.")
        _register(task, self)

    def enqueue(self, task: Task, args, kwargs) -> TaskResult:
        """Write the task's job in the current transaction; it is pushed when that commits."""
        self.validate_task(task)
        job = enqueue(
            task.module_path,
            _payload(task, args, kwargs),
            run_at=task.run_after,
            queue=task.queue_name,
            priority=task.priority,
            backend=self.alias,
        )
        result = TaskResult(
            task=task,
            id=str(job.uid),
            status=TaskResultStatus.READY,
            enqueued_at=job.created_at,
            started_at=None,
            finished_at=None,
            last_attempted_at=None,
            args=job.payload["args"],
            kwargs=job.payload["kwargs"],
            backend=self.alias,
            errors=[],
            worker_ids=[],
        )
        task_enqueued.send(type(self), task_result=result)
        return result

    def get_result(self, result_id: str) -> TaskResult:
        """The result of the task whose job is `result_id`, as the ledger has it now (one
        query)."""
        which = _job_of_result(result_id)
        job = None if which is None else _with_history().filter(which, backend=self.alias).first()
        if job is None:
            raise TaskResultDoesNotExist(result_id)
        return result_of(job)

    def check(self, **kwargs):
        yield from super().check(**kwargs)
        if not apps.is_installed("bimride.jobs"):
            yield checks.Error(
                f"TASKS[{self.alias!r}] runs tasks as jobs, but the job system is not installed.",
                hint="Add 'bimride.jobs' to INSTALLED_APPS.",
                id="bimride.jobs.E002",
            )
        unserved = sorted(set(self.queues or ["(any)"]) - set(settings.JOB_QUEUES))
        if unserved:
            yield checks.Error(
                f"TASKS[{self.alias!r}] names queues no worker serves: {unserved}.",
                hint=f"QUEUES must be among {list(settings.JOB_QUEUES)}.",
                id="bimride.jobs.E001",
            )


def _job_of_result(result_id) -> Q | None:
    """Which job a result id names: its opaque id; or, for a job written before jobs had one,
    its integer id (the result id it was given then). None if it cannot name a job."""
    if not isinstance(result_id, str):
        return None
    try:
        return Q(uid=uuid.UUID(result_id))
    except ValueError:
        pass
    if result_id.isascii() and result_id.isdigit() and int(result_id) < 2**63:  # a bigint
        return Q(pk=int(result_id), uid__isnull=True)
    return None


def _register(task: Task, backend: JobBackend) -> None:
    """Register the job type running `task` (once: its `using()` copies share it)."""
    name = task.module_path
    existing = registry.all_types().get(name)
    if existing is not None:
        if existing.task is None:
            raise InvalidTaskError(f"{name!r} is already the name of a job type.")
        return
    registry.add(
        JobType(
            name=name,
            func=run_task,
            queue=task.queue_name,
            retry=getattr(task, "retry", None) or backend.retry,
            timeout=getattr(task, "timeout", TASK_TIMEOUT),
            payload=TaskPayload,
            atomic=backend.atomic if getattr(task, "atomic", None) is None else task.atomic,
            on_finish=_finished,
            task=task,
        )
    )


def _unjsonable(value, path: str) -> str | None:
    """Where in `value` JSON fails, and why: the first value it cannot hold, if any."""
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str | int | float | bool | NoneType):
                return f"{path} has a key of type {type(key).__qualname__}"
            found = _unjsonable(item, f"{path}[{key!r}]")
            if found:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _unjsonable(item, f"{path}[{index}]")
            if found:
                return found
    elif isinstance(value, float) and not math.isfinite(value):
        return f"{path} is {value!r}"
    elif isinstance(value, bytes):
        try:
            value.decode()
        except UnicodeDecodeError:
            return f"{path} is bytes that are not UTF-8"
    elif not isinstance(value, str | int | float | bool | NoneType):
        return f"{path} is of type {type(value).__qualname__}"
    return None


def _payload(task: Task, args, kwargs) -> dict:
    """The stored call, as JSON gives it back (as Django normalises it: tuples become lists,
    UTF-8 bytes strings); TaskArgumentsError, naming the culprit, if JSON cannot hold it."""
    try:
        call = normalize_json({"args": list(args), "kwargs": dict(kwargs)})
        return json.loads(json.dumps(call, allow_nan=False))
    except (TypeError, ValueError) as error:
        found = _unjsonable(list(args), "args") or _unjsonable(dict(kwargs), "kwargs")
        raise TaskArgumentsError(
            f"The arguments of task {task.module_path} must be JSON-serialisable: {found or error}."
        ) from None


def _task_of(job: Job) -> Task:
    try:
        job_type = registry.get(job.name)
    except UnknownJob as error:  # its module is gone, or it names no task
        return MissingTask(
            func=missing_task, backend=job.backend, path=job.name, problem=str(error)
        )
    if job_type.task is None:
        return MissingTask(
            func=missing_task, backend=job.backend, path=job.name, problem="It is no task."
        )
    return job_type.task.using(
        priority=job.priority,
        queue_name=job.queue,
        run_after=job.run_after,
        backend=job.backend or None,  # enqueued by name (perform_job, a schedule): the task's
    )


# A task's history, read with its job (`history`): the audit events that make its result.
_HISTORY = ArraySubquery(
    JobEvent.objects.filter(job_id=OuterRef("pk"), state__in=["running", "retrying", "dead"])
    .order_by("at", "id")
    .values(
        event=JSONObject(
            state="state",
            at="at",
            worker="worker",
            error_class="error_class",
            traceback="traceback",
        )  # fmt: skip
    )
)


def _with_history():
    return Job.objects.annotate(history=_HISTORY)


def result_of(job: Job) -> TaskResult:
    """The TaskResult of a task's job, read with `_with_history()`: its row and audit events."""
    events = job.history
    runs = [
        (datetime.fromisoformat(e["at"]), e["worker"]) for e in events if e["state"] == "running"
    ]
    status = STATUS[job.state]
    task = _task_of(job)
    result = TaskResult(
        task=task,
        id=str(job.uid) if job.uid else str(job.pk),
        status=status,
        enqueued_at=job.created_at,
        started_at=runs[0][0] if runs else None,
        finished_at=job.finished_at,
        last_attempted_at=runs[-1][0] if runs else None,
        args=job.payload.get("args", []),
        kwargs=job.payload.get("kwargs", {}),
        backend=task.backend,
        errors=[
            TaskError(exception_class_path=e["error_class"], traceback=e["traceback"])
            for e in events
            if e["error_class"]
        ],
        worker_ids=[worker for _, worker in runs],
    )
    if status == TaskResultStatus.SUCCESSFUL:
        object.__setattr__(result, "_return_value", job.result)
    return result


def run_task(payload: dict, ctx: JobContext):
    """The handler of every task's job: call the function with the stored arguments (and a
    TaskContext first, for `takes_context=True`); its return value must be JSON."""
    result = result_of(_with_history().get(pk=ctx.job_id))
    task = result.task
    task_started.send(type(task_backends[result.backend]), task_result=result)
    context = (TaskContext(task_result=result),) if task.takes_context else ()
    value = _call(task, *context, *result.args, **result.kwargs)
    try:
        value = normalize_json(value)
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError) as error:
        raise TaskReturnValueError(
            f"Task {task.module_path} returned what JSON cannot hold: {error}"
        ) from None
    return value


def _call(task: Task, *args, **kwargs):
    """Call the task's function, as `Task.call()` does: a coroutine function runs to completion
    on an event loop of its own (its ORM calls come back to this thread, in the attempt's
    transaction). If the attempt is interrupted meanwhile (its time limit), the coroutine is
    cancelled at its next await instead of running on unseen."""
    if not iscoroutinefunction(task.func):
        return task.call(*args, **kwargs)
    running = []

    async def run():
        running.append(asyncio.current_task())
        return await task.func(*args, **kwargs)

    try:
        return async_to_sync(run)()
    except BaseException:
        for coroutine in running:
            if not coroutine.done():
                with contextlib.suppress(RuntimeError):  # its loop closed meanwhile
                    coroutine.get_loop().call_soon_threadsafe(coroutine.cancel)
        raise


def _finished(job_id: int) -> None:
    """Send `task_finished` once a task's job succeeded or died (committed)."""
    result = result_of(_with_history().get(pk=job_id))
    task_finished.send(type(task_backends[result.backend]), task_result=result)
