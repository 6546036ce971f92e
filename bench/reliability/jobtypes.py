"""The job type of `bench.reliability`, loaded in workers with JOB_EXTRA_MODULES.

`reliability.record_effect` inserts one row keyed by its job id into `reliability_effects` in
the job's own transaction (job types are atomic by default), so the driver can count effects:
exactly one per succeeded job, two for a job whose effect was committed twice.
"""

import time

from django.db import connection
from rest_framework import serializers

from bimride.jobs.engine.registry import JobContext, job
from bimride.jobs.engine.retry import RetryPolicy

EFFECTS_TABLE = "reliability_effects"
NAME = "reliability.record_effect"


class EffectPayload(serializers.Serializer):
    n = serializers.IntegerField(min_value=0)
    sleep = serializers.FloatField(min_value=0, max_value=10, required=False)


def create_effects_table() -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"CREATE TABLE IF NOT EXISTS {EFFECTS_TABLE}"
            " (job_id bigint NOT NULL, attempt int NOT NULL, at timestamptz DEFAULT now())"
        )


def effect_counts(job_ids: list[int]) -> dict[int, int]:
    """Number of effect rows per job id, for the given jobs (missing: no effect)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT job_id, count(*) FROM {EFFECTS_TABLE} WHERE job_id = ANY(%s) GROUP BY job_id",
            [job_ids],
        )
        return dict(cursor.fetchall())


@job(
    NAME,
    queue="default",
    payload=EffectPayload,
    timeout=3,  # a killed worker's job is rescued after 3 s + the lease grace
    retry=RetryPolicy(max_attempts=8, initial=0.5, max_delay=2.0),
)
def record_effect(payload: dict, ctx: JobContext) -> dict:
    """Sleep a little (so kills land mid-job), then insert one effect row."""
    time.sleep(payload.get("sleep", 0))
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {EFFECTS_TABLE} (job_id, attempt) VALUES (%s, %s)",
            [ctx.job_id, ctx.attempt],
        )
    return {"n": payload["n"], "attempt": ctx.attempt}
