"""The registry of job types: `@job` declares a handler, its queue, retry, timeout and payload."""

import json
import string
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.utils.module_loading import import_string
from rest_framework import serializers

from bimride.jobs.engine.errors import JobPayloadError, LeaseLost, Snooze, UnknownJob
from bimride.jobs.engine.events import Event, events_of
from bimride.jobs.engine.retry import DEFAULT_RETRY, RetryPolicy
from bimride.jobs.models import Job


@dataclass
class JobContext:
    """What a handler knows of the attempt it runs in."""

    job_id: int
    name: str
    queue: str
    attempt: int
    trace_id: str
    idempotency_key: str  # the job's key, or `job:<id>`, for calls with nothing better to key on
    progress: dict | None = None  # the last progress reported, also by an earlier attempt

    def report(self, **progress) -> None:
        """Record progress (`done`, `total`, a `cursor` to resume from) on the job, in the
        current transaction: commit it together with the chunk of work it describes."""
        updated = Job.objects.filter(pk=self.job_id, state="running", attempts=self.attempt).update(
            progress=progress
        )
        if not updated:
            raise LeaseLost(f"job {self.job_id} attempt {self.attempt} lost its lease")
        self.progress = progress

    def snooze(self, seconds: float, reason: str = ""):
        """End this attempt with "not yet, again in `seconds`" (raises Snooze): the attempt
        is given back, nothing is logged as an error, up to the job type's `max_snoozes`."""
        raise Snooze(seconds, reason)


@dataclass
class JobType:
    name: str
    func: Callable[[dict, JobContext], object]
    queue: str
    retry: RetryPolicy
    timeout: int
    payload: type[serializers.Serializer] | None
    on: tuple[str, ...] = ()
    subject: str | None = None  # e.g. "ride": the job belongs to ride payload["ride_id"]
    atomic: bool = True  # run the handler and record success in one transaction
    on_dead: Callable[[dict, str], None] | None = field(default=None, repr=False)
    # Called with the job's id once its outcome (succeeded or dead) is committed.
    on_finish: Callable[[int], None] | None = field(default=None, repr=False)
    task: object | None = field(default=None, repr=False)  # the Tasks API task it runs, if any
    # "ride:{ride_id}": of the live jobs whose payload gives the same key, only the oldest runs.
    concurrency_key: str = ""
    priority: int = 0  # higher first among a queue's due jobs
    max_snoozes: int = 100

    def __call__(self, payload: dict, ctx: JobContext):
        return self.func(payload, ctx)

    def validate(self, payload: dict) -> dict:
        """The payload, checked against the schema and proven to survive a JSON round trip."""
        if not isinstance(payload, dict):
            raise JobPayloadError(self.name, {"payload": ["Must be a JSON object."]})
        if self.payload is not None:
            serializer = self.payload(data=payload)
            if not serializer.is_valid():
                raise JobPayloadError(self.name, serializer.errors)
        try:
            return json.loads(json.dumps(payload))
        except (TypeError, ValueError) as error:
            raise JobPayloadError(self.name, {"payload": [str(error)]}) from None

    def key_fields(self) -> list[str]:
        """The payload fields the concurrency key names."""
        return [name for _, name, _, _ in string.Formatter().parse(self.concurrency_key) if name]

    def concurrency_key_of(self, payload: dict) -> str:
        """The job's concurrency key, "" without one (or without the fields it names)."""
        if not self.concurrency_key or any(payload.get(f) is None for f in self.key_fields()):
            return ""
        return self.concurrency_key.format(**payload)

    def subject_of(self, payload: dict) -> str:
        if self.subject and payload.get(f"{self.subject}_id") is not None:
            return f"{self.subject}:{payload[f'{self.subject}_id']}"
        return ""


_types: dict[str, JobType] = {}
_subscribers: dict[str, list[JobType]] = defaultdict(list)


def job(
    name: str,
    *,
    queue: str = "default",
    retry: RetryPolicy = DEFAULT_RETRY,
    timeout: int = 60,
    payload: type[serializers.Serializer] | None = None,
    on: type[Event] | tuple[type[Event], ...] = (),
    subject: str | None = None,
    atomic: bool = True,
    on_dead: Callable[[dict, str], None] | None = None,
    concurrency_key: str = "",
    priority: int = 0,
    max_snoozes: int = 100,
) -> Callable[[Callable], JobType]:
    """Register the decorated function as job type `name` ("app.verb_noun", never renamed).

    `on` subscribes it to declared events (`bimride.jobs.Event`) given to `publish()`; without
    a `payload` schema of its own, a subscriber's payload is the event's. `on_dead(payload,
    error)` runs once when the job is dead-lettered (mark the payment failed, tell the rider).
    `concurrency_key` ("ride:{ride_id}", payload fields in braces) runs the jobs of one key one
    at a time, oldest first, across all hosts; `priority` (-100..100) orders a queue's due
    jobs; a job snoozing more than `max_snoozes` times is dead-lettered.
    """
    if queue not in settings.JOB_QUEUES:
        raise ValueError(f"{name}: unknown queue {queue!r}; queues are {settings.JOB_QUEUES}")
    if not 1 <= timeout <= settings.JOB_MAX_TIMEOUT:
        raise ValueError(f"{name}: timeout must be 1..{settings.JOB_MAX_TIMEOUT} seconds")

    events = events_of(on)
    if payload is None and events:
        payload = _schema_of(name, events)

    def register(func: Callable) -> JobType:
        return add(
            JobType(
                name,
                func,
                queue,
                retry,
                timeout,
                payload,
                tuple(event.name for event in events),
                subject,
                atomic,
                on_dead,
                concurrency_key=concurrency_key,
                priority=priority,
                max_snoozes=max_snoozes,
            )
        )

    return register


def _schema_of(name: str, events: tuple[type[Event], ...]) -> type[serializers.Serializer]:
    """The payload schema of the events job `name` subscribes to: theirs when they agree."""
    if len({tuple(event.schema().fields) for event in events}) > 1:
        raise ValueError(f"{name}: its events' payloads differ; declare the job's own payload=")
    return events[0].schema


def add(job_type: JobType) -> JobType:
    """Register `job_type` (by `@job`, or by the Tasks API backend for a task)."""
    name, func = job_type.name, job_type.func
    if name in _types and _types[name].func.__qualname__ != func.__qualname__:
        raise ValueError(f"Job type {name} is declared twice")
    _types[name] = job_type
    for event in job_type.on:
        if job_type not in _subscribers[event]:
            _subscribers[event].append(job_type)
    return job_type


def get(name: str) -> JobType:
    """The job type `name`. A task's job type is named by its module path: if its module was
    not imported yet (a worker imports apps' tasks.py only), importing it registers it."""
    failure = None
    if name not in _types and "." in name:
        try:
            import_string(name)
        except ImportError as error:  # a deploy removed or renamed the task
            failure = error
    try:
        return _types[name]
    except KeyError:
        if failure is not None:
            raise UnknownJob(
                f"No job type named {name!r}: importing it failed"
                f" ({type(failure).__name__}: {failure})"
            ) from failure
        raise UnknownJob(f"No job type named {name!r}") from None


def all_types() -> dict[str, JobType]:
    return dict(_types)


def subscribers(event: str) -> list[JobType]:
    return list(_subscribers.get(event, ()))


def subscriptions() -> dict[str, list[str]]:
    """The names of the jobs subscribed to each event with subscribers."""
    return {event: [t.name for t in types] for event, types in _subscribers.items() if types}
