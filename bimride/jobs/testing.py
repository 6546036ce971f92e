"""Running a job's handler in a test, as a worker would run it, without a worker."""

import dataclasses
from contextlib import nullcontext

from django.db import transaction

from bimride.jobs.engine import registry, runner
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.models import Job


def perform_job(name: str, payload: dict | None = None, **ctx_overrides):
    """Enqueue job `name`, claim it and run its handler here; return what the handler returns.

    As a real attempt: the payload is the one stored in the Job row (schema-checked and through
    its JSON round trip), the context is the runner's (`job_id`, `attempt` 1, the job's
    `idempotency_key` or `job:<id>`), an atomic job runs in one transaction with its success
    recorded. Unlike `run_job`, a handler's exception reaches the caller instead of being
    recorded. `ctx_overrides` replace context fields (`attempt=3`, `idempotency_key="x"`: the
    key is also the job's, the attempt also the row's). The handler runs now: a concurrency
    key does not make it wait for earlier jobs of its key (their order is the runner's).
    """
    job_type = registry.get(name)
    job = enqueue(name, payload, idempotency_key=ctx_overrides.get("idempotency_key"))
    Job.objects.filter(pk=job.pk).update(concurrency_key="")
    job = runner._claim(job.pk, None)
    if job is None:
        raise RuntimeError(f"{name}: the job was not claimable (deferred, or a duplicate key)")
    if "attempt" in ctx_overrides:
        job.attempts = ctx_overrides["attempt"]
        Job.objects.filter(pk=job.pk).update(attempts=job.attempts)
    ctx = dataclasses.replace(runner._context(job), **ctx_overrides)
    with transaction.atomic() if job_type.atomic else nullcontext():
        result = job_type(job.payload, ctx)
        runner._succeed(job, result)
    return result
