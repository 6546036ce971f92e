"""Job types for the benchmark, loaded in workers via JOB_EXTRA_MODULES=bench.common.jobtypes.

`bench.noop_<queue>` is a no-op job on each queue. `bench.stripe_wait` (on `critical`, the
payments' queue) reads a PaymentIntent from the Stripe stand-in: `make bench-providers`' job.
`plain_noop` is a plain function for plain django-q2 `async_task`: given a tag and a reference
time (epoch seconds: when it was enqueued or due) it records the moment it started in
`bench_marks`; given nothing it does nothing.
"""

import time

from django.db import connection
from rest_framework import serializers

from bench.common.provider_call import PROVIDER_JOB, PROVIDER_QUEUE, intent_retrieve
from bimride.db import provider_call
from bimride.jobs.engine.registry import JobContext, job

MARKS_TABLE = "bench_marks"


class NoopPayload(serializers.Serializer):
    n = serializers.IntegerField(min_value=0)


for queue in ("critical", "default", "bulk"):

    @job(f"bench.noop_{queue}", queue=queue, payload=NoopPayload, timeout=10)
    def noop(payload: dict, ctx: JobContext) -> dict:
        """Do nothing; the job system records start and finish on the Job row."""
        return {}


def plain_noop(tag: str | None = None, t_ref: float | None = None) -> None:
    """Do nothing, or record (tag, t_ref, start time) when given a tag."""
    started = time.time()
    if tag is None:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {MARKS_TABLE} (tag, t_ref, t_start) VALUES (%s, %s, %s)",
            [tag, t_ref, started],
        )


class IntentPayload(serializers.Serializer):
    intent_id = serializers.CharField(max_length=255)


@job(PROVIDER_JOB, queue=PROVIDER_QUEUE, payload=IntentPayload, timeout=30, atomic=False)
def stripe_wait(payload: dict, ctx: JobContext) -> dict:
    """Read a PaymentIntent from the Stripe stand-in: a job that waits on its provider, written
    as the payment jobs are (not atomic; its connection given back before the call)."""
    provider_call("Stripe")
    return {"status": intent_retrieve(payload["intent_id"])}
