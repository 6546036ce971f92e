"""Tasks of Django's Tasks API for the tests, declared as Django's documentation declares them.

Nothing lists this module for the workers: a task's job type is named by its module path, so a
worker imports it the first time it meets one of its jobs, as it would a third-party app's.
"""

import asyncio
import time

from django.core.mail import send_mail
from django_tasks import task

from bimride.jobs.engine.retry import RetryPolicy
from bimride.jobs.models import Job


@task
def email_users(emails, subject, message):
    return send_mail(subject=subject, message=message, from_email=None, recipient_list=emails)


@task()
def add(a, b):
    return a + b


@task(takes_context=True)
def whoami(context, tag):
    return {"attempt": context.attempt, "result_id": context.task_result.id, "tag": tag}


@task(retry=RetryPolicy(max_attempts=2, initial=0.1, max_delay=0.2), timeout=10)
def explode(message):
    raise ValueError(message)


@task(takes_context=True, retry=RetryPolicy(max_attempts=3, initial=0.5, max_delay=1.0))
def flaky(context, fail_times):
    """Fail the first `fail_times` attempts, then answer the attempt that succeeded."""
    if context.attempt <= fail_times:
        raise RuntimeError(f"planned failure of attempt {context.attempt}")
    return context.attempt


@task
def sleep_then(seconds, value):
    time.sleep(seconds)
    return value


@task
def returns_a_set():
    return {1, 2}


@task(takes_context=True)
async def sees_itself_running(context, pause):
    """A coroutine function: it awaits, and reads its own job through the async ORM."""
    await asyncio.sleep(pause)
    return await Job.objects.filter(uid=context.task_result.id, state="running").aexists()


@task(queue_name="critical", priority=50)
def urgent(n):
    return n


OVERRUN_OUTCOMES = []  # what became of `overruns` in this process


@task(timeout=1, retry=RetryPolicy(max_attempts=1))
async def overruns(seconds):
    """Await longer than its time limit allows; say whether it was cancelled or finished."""
    try:
        await asyncio.sleep(seconds)
    except asyncio.CancelledError:
        OVERRUN_OUTCOMES.append("cancelled")
        raise
    OVERRUN_OUTCOMES.append("finished")
