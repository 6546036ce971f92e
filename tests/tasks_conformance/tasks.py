"""The tasks the conformance suite enqueues: one per behaviour the reference suites exercise
(a no-op, a value, each kind of failure, a hang, context), declared as a user declares them."""

import os
import signal
import sys
import time

from django.db import connection
from django_tasks import task

from bimride.jobs.engine.retry import RetryPolicy
from tests.jobtypes import EFFECTS_TABLE


@task
def noop(*args, **kwargs):
    return None


@task()
async def noop_async(*args, **kwargs):
    return None


@task()
def meaning_of_life():
    return 42


@task()
def raises_value_error(message="it went wrong"):
    raise ValueError(message)


@task()
def raises_system_exit():
    raise SystemExit("the task asked to exit")


@task()
def raises_keyboard_interrupt():
    raise KeyboardInterrupt("the task pressed Ctrl-C")


@task()
def calls_exit():
    sys.exit(1)


@task()
def raises_nested_exception():
    raise ValueError(ValueError("the inner error"))


@task()
def returns_a_function():
    return lambda: True


@task()
def sleeps(seconds):
    time.sleep(seconds)
    return seconds


@task(timeout=300)
def hangs():
    time.sleep(300)


@task(timeout=3)
def hangs_briefly():
    time.sleep(30)


@task(takes_context=True)
def own_result_id(context):
    return context.task_result.id


@task(takes_context=True)
def checks_context(context, attempt):
    assert context.attempt == attempt and context.task_result.attempts == attempt
    return context.task_result.worker_ids[-1]


@task(takes_context=True, retry=RetryPolicy(max_attempts=3, initial=0.1, max_delay=0.2))
def fails_until(context, attempt):
    """Retried, by its own policy: fails its first attempts, succeeds at `attempt`."""
    if context.attempt < attempt:
        raise RuntimeError(f"attempt {context.attempt} fails")
    return context.attempt


def _write_effect(n: int) -> None:
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt) VALUES (%s, 1)", [n])


@task(atomic=True)
def writes_then_fails(n):
    """Asks for atomicity: its write is rolled back with its failure."""
    _write_effect(n)
    raise RuntimeError("after the write")


@task()
def writes_then_fails_unwrapped(n):
    """The default, as the reference runs a task: no transaction, its write stays."""
    _write_effect(n)
    raise RuntimeError("after the write")


def plain_function():
    """Not a task until a test declares it one (under the backend options it tries)."""
    return "plain"


def plain_function_under_options():
    """Not a task until the options test declares it one."""
    return "plain"


@task()
def interrupts_its_process():
    """Sends its own process SIGINT, as a Ctrl-C would, and waits for it to arrive."""
    os.kill(os.getpid(), signal.SIGINT)
    time.sleep(5)
