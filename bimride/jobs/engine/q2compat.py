"""The one module that imports django-q2: the names the product uses, and BimRide's patches.

The rest of the product imports django-q2's classes from here. Where django-q2's own code
breaks a promise of the job system, a patch replaces it; `apply()`, called by the jobs app's
`ready()` in every process, first checks that the installed django-q2 is the version the
patches were written for and still has what each of them relies on, and refuses to start
(`ImproperlyConfigured`, naming what changed) otherwise. docs/jobs.md's "django-q2
compatibility" says, per patch, what django-q2 would have to change for it to go;
tests/jobs/test_q2compat.py pins the source of the upstream code each patch was reviewed
against.
"""

import contextlib
import dis
import importlib.metadata
import inspect
import logging
import multiprocessing
import multiprocessing.connection
import multiprocessing.queues
import os
import queue
import signal
import sys

from django.core.exceptions import ImproperlyConfigured
from django_q import cluster
from django_q.admin import QueueAdmin, ScheduleAdmin
from django_q.brokers.orm import ORM
from django_q.cluster import Cluster, Sentinel
from django_q.conf import Conf
from django_q.exceptions import TimeoutException
from django_q.models import OrmQ, Schedule, Task
from django_q.queues import Queue as ClusterQueue
from django_q.signals import post_spawn
from django_q.signing import SignedPackage
from django_q.worker import worker

from bimride.jobs.engine import shutdown

__all__ = [
    "ORM",
    "Cluster",
    "ClusterQueue",
    "Conf",
    "OrmQ",
    "QueueAdmin",
    "Schedule",
    "ScheduleAdmin",
    "SignedPackage",
    "Task",
    "TimeoutException",
    "WorkerTimer",
    "apply",
    "upstream",
]

SUPPORTED_VERSION = "1.11.1"  # re-review every patch below before changing it

logger = logging.getLogger(__name__)

# --- the cluster's shared state, robust to SIGKILLed workers ----------------------------------
# django-q2's processes share locks; a worker killed while holding one took its cluster down:
# - the task queue's read lock: get() held it while waiting for the next task, so a worker killed
#   while idle left no other worker able to take one. Here a worker waits holding no lock and
#   takes the lock only to read a task.
# - the queues' size counters, locked on every put and get (by the pusher and the workers) and
#   read by the guard: a worker killed in get() hung the pusher and the guard. On Linux the
#   queues' own semaphores count their tasks, without a lock, so the counters go unused.
# - each worker's timer, locked by the worker after each task and by the guard every cycle: a
#   worker killed in that block hung the guard, which then replaced no dead worker again.
#   Here the guard gives up waiting for a dead worker's timer lock (nobody else uses it).
_StdQueue = multiprocessing.queues.Queue
_TAKE_WAIT = 0.01  # seconds a worker holds the lock when another took the task it saw


def _get_waiting_unlocked(self, block=True, timeout=None):
    if not block or timeout is not None:
        return _StdQueue.get(self, block, timeout)
    while True:
        self._reader.poll(None)  # until a task is in the pipe
        with contextlib.suppress(queue.Empty):  # another worker took it first
            return _StdQueue.get(self, True, _TAKE_WAIT)


class WorkerTimer:
    """A worker's timer: the seconds left of its task (-1 idle), set by the worker and counted
    down by the cluster's guard under its lock, as django-q2's `Value` is; but once the worker
    is dead, the guard does not wait for the lock (the worker may have died holding it)."""

    def __init__(self, typecode: str, value: float):
        context = multiprocessing.get_context()
        self._value, self._lock = context.RawValue(typecode, value), context.RLock()
        self.process = None  # the worker, known to the guard's process once started
        self._held = []

    def get_lock(self):
        return self

    def __enter__(self):
        while not self._lock.acquire(timeout=1.0):
            if self.process is not None and not self.process.is_alive():
                self._held.append(False)
                return self
        self._held.append(True)
        return self

    def __exit__(self, *exc) -> None:
        if self._held.pop():
            self._lock.release()

    @property
    def value(self) -> float:
        with self:
            return self._value.value

    @value.setter
    def value(self, value: float) -> None:
        with self:
            self._value.value = value


def _spawn_process_with_timer(self, target, *args):
    process = upstream(Sentinel, "spawn_process")(self, target, *args)
    if target is worker:
        args[2].process = process  # worker(task_queue, result_queue, timer, timeout)
    return process


# --- stopping: a second Ctrl-C (or SIGTERM) stops the running tasks at once ------------------
# On SIGINT or SIGTERM the cluster stops gracefully: each worker finishes its task first. A second
# signal only waited again, so a hung task kept the cluster up until it was SIGKILLed. Here it
# sends SIGTERM to the cluster's workers, which obey it at once (set up as they spawn, by
# post_spawn, django-q2's signal): the running attempt is recorded as failed, and the worker
# exits. A worker's SIGINT stays ignored (a terminal's Ctrl-C reaches the whole cluster).


def _workers(sentinel_pid: int) -> list[int]:
    """The sentinel's live children that obey SIGTERM (its workers, not the pusher and the
    monitor, which would just die)."""
    found = []
    term = 1 << (signal.SIGTERM - 1)
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, ValueError, IndexError):
            with open(f"/proc/{entry.name}/status") as status:
                fields = dict(line.split(":", 1) for line in status)
            if int(fields["PPid"]) == sentinel_pid and int(fields["SigCgt"], 16) & term:
                found.append(int(entry.name))
    return sorted(found)


def _sig_handler_stopping_at_once_when_repeated(self, signum, frame):
    stopping = self.stop_event is not None and self.stop_event.is_set()
    if not (stopping and self.sentinel is not None and self.sentinel.is_alive()):
        return upstream(Cluster, "sig_handler")(self, signum, frame)  # the first: graceful
    workers = _workers(self.sentinel.pid)
    logger.warning(
        "received %s again: stopping the running tasks now (workers %s)",
        signal.Signals(signum).name,
        workers,
    )
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    return None


def _obey_sigterm(sender, proc_name: str, **kwargs) -> None:
    """In a worker as it starts: SIGTERM stops it at once, its running attempt recorded."""
    shutdown.obey_stop_signals((signal.SIGTERM,))


# (owner, attribute, replacement): what apply() sets, each correcting one upstream behaviour.
PATCHES = (
    # put() also bumps a shared counter under a lock a killed worker may hold forever
    (ClusterQueue, "put", _StdQueue.put),
    # qsize() reads that counter (under its lock); the queue's own semaphore counts on Linux
    (ClusterQueue, "qsize", _StdQueue.qsize),
    # empty() reads that counter too; the pipe itself says whether a task is waiting
    (ClusterQueue, "empty", _StdQueue.empty),
    # get() waits for a task holding the queue's read lock, and bumps the counter
    (ClusterQueue, "get", _get_waiting_unlocked),
    # Value("f", -1): the guard waits forever for a timer lock a killed worker held
    (cluster, "Value", WorkerTimer),
    # spawn_process() does not tell a worker's timer which process it times
    (Sentinel, "spawn_process", _spawn_process_with_timer),
    # sig_handler() ignores a second signal: a task that hangs keeps the cluster up
    (Cluster, "sig_handler", _sig_handler_stopping_at_once_when_repeated),
)
_upstream: dict[tuple[object, str], object] = {}  # what apply() replaced, by (owner, attribute)


def upstream(owner, name: str):
    """`owner.name` as django-q2 defines it, even once apply() replaced it."""
    return _upstream.get((owner, name), getattr(owner, name))


def _current_upstream(owner, name: str, replacement):
    """`owner.name` as it would be before applying: the replaced code if apply() ran, or else
    whatever is there now (which may be an upgrade's, to be checked before it is wrapped)."""
    current = getattr(owner, name)
    return upstream(owner, name) if current is replacement else current


def _global_names(function) -> set[str]:
    return {i.argval for i in dis.get_instructions(function) if i.opname == "LOAD_GLOBAL"}


def _task_queue_problems() -> list[str]:
    found = []
    if not issubclass(ClusterQueue, _StdQueue):
        found.append("django_q.queues.Queue is no longer a multiprocessing.queues.Queue")
    reader = multiprocessing.connection.Connection
    if "_reader" not in _StdQueue.__init__.__code__.co_names or not callable(reader.poll):
        found.append("multiprocessing.queues.Queue has no `_reader.poll` to wait on unlocked")
    if sys.platform == "darwin":
        found.append("multiprocessing.queues.Queue.qsize() is not implemented on macOS")
    return [f"task queue: {problem}" for problem in found]


def _params(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def _timer_problems() -> list[str]:
    found = []
    spawn_worker = Sentinel.spawn_worker
    if "Value" not in _global_names(spawn_worker):
        found.append(
            "django_q.cluster.Sentinel.spawn_worker no longer looks `Value` up at module level,"
            " so replacing django_q.cluster.Value would not reach the workers"
        )
    if _current_upstream(cluster, "Value", WorkerTimer) is not multiprocessing.Value:
        found.append("django_q.cluster.Value is no longer multiprocessing.Value")
    if "worker" not in _global_names(spawn_worker) or cluster.worker is not worker:
        found.append(
            "django_q.cluster.Sentinel.spawn_worker no longer spawns django_q.worker.worker"
        )
    return [f"worker timer: {problem}" for problem in found]


def _spawn_process_problems() -> list[str]:
    found = []
    spawn_process = _current_upstream(Sentinel, "spawn_process", _spawn_process_with_timer)
    parameters = inspect.signature(spawn_process).parameters.values()
    if [(p.name, p.kind) for p in parameters] != [
        ("self", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("target", inspect.Parameter.POSITIONAL_OR_KEYWORD),
        ("args", inspect.Parameter.VAR_POSITIONAL),
    ]:
        found.append("django_q.cluster.Sentinel.spawn_process is no longer (self, target, *args)")
    if _params(worker)[:3] != ["task_queue", "result_queue", "timer"]:
        found.append("django_q.worker.worker no longer gets its timer third (args[2])")
    return [f"timer's process: {problem}" for problem in found]


def _stop_problems() -> list[str]:
    found = []
    sig_handler = _current_upstream(
        Cluster, "sig_handler", _sig_handler_stopping_at_once_when_repeated
    )
    if _params(sig_handler) != ["self", "signum", "frame"]:
        found.append("django_q.cluster.Cluster.sig_handler is no longer (self, signum, frame)")
    if "sig_handler" not in Cluster.__init__.__code__.co_names:
        found.append("django_q.cluster.Cluster no longer installs self.sig_handler")
    if "post_spawn" not in _global_names(worker):
        found.append("django_q.worker.worker no longer sends post_spawn as it starts")
    if not os.path.exists(f"/proc/{os.getpid()}/status"):
        found.append("there is no /proc to find a cluster's workers in")
    return [f"stopping: {problem}" for problem in found]


def _problems() -> list[str]:
    installed = importlib.metadata.version("django-q2")
    found = []
    if installed != SUPPORTED_VERSION:
        found.append(
            f"version: django-q2 {installed} is installed, the patches are reviewed for"
            f" {SUPPORTED_VERSION}"
        )
    return (
        found
        + _task_queue_problems()
        + _timer_problems()
        + _spawn_process_problems()
        + _stop_problems()
    )


def apply() -> None:
    """Check that django-q2 is what the patches were written for, then apply them (safe to call
    again). Raises ImproperlyConfigured naming each precondition that no longer holds."""
    problems = _problems()
    if problems:
        raise ImproperlyConfigured(
            "django-q2 is not what bimride/jobs/engine/q2compat.py was written for; re-review its"
            " patches (docs/jobs.md, 'django-q2 compatibility'):\n- " + "\n- ".join(problems)
        )
    for owner, name, replacement in PATCHES:
        current = getattr(owner, name)
        if current is not replacement:
            _upstream[(owner, name)] = current
            setattr(owner, name, replacement)
    post_spawn.connect(_obey_sigterm, dispatch_uid="bimride.jobs.engine.q2compat")
