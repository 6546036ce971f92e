# The ledger at tens of millions of rows: indexes of the live jobs only, an index for the admin's
# date drill-down, and autovacuum settings sized for tables that grow and are pruned daily.
#
# Runs on a live database without blocking reads or writes: the indexes are built and dropped
# CONCURRENTLY (a SHARE UPDATE EXCLUSIVE lock, which only excludes vacuum and other schema
# changes of the table), so the migration is not atomic; the new indexes come first, so every
# query has its index throughout. ALTER TABLE ... SET (autovacuum_...) takes the same lock for
# a moment. Measured times are in the README ("The ledger at scale").

import django.db.models.deletion
from django.conf import settings
from django.contrib.postgres.operations import AddIndexConcurrently, RemoveIndexConcurrently
from django.db import migrations, models

# A table that grows by millions of rows a day and loses as many to retention: vacuum and
# analyze after 1 % of it changed instead of 20 % (Django's and PostgreSQL's default), so that
# the space retention frees is reused within the day and index-only scans stay index-only.
AUTOVACUUM = {
    "autovacuum_vacuum_scale_factor": "0.01",
    "autovacuum_vacuum_insert_scale_factor": "0.01",
    "autovacuum_analyze_scale_factor": "0.01",
    "autovacuum_vacuum_cost_limit": "1000",
}
TABLES = ("jobs_job", "jobs_jobevent")


def _set(table: str) -> str:
    return f"ALTER TABLE {table} SET ({', '.join(f'{k} = {v}' for k, v in AUTOVACUUM.items())})"


def _reset(table: str) -> str:
    return f"ALTER TABLE {table} RESET ({', '.join(AUTOVACUUM)})"


def _unindexed_foreign_key(model: str, name: str, old_index: str, table: str, column: str):
    """The foreign key's full index (mostly NULLs) dropped concurrently; a partial index of the
    rows that have a value is added before it by AddIndexConcurrently."""
    return migrations.SeparateDatabaseAndState(
        state_operations=[
            migrations.AlterField(
                model_name=model,
                name=name,
                field=models.ForeignKey(
                    blank=True,
                    db_index=False,
                    null=True,
                    on_delete=django.db.models.deletion.SET_NULL,
                    **(
                        {"related_name": "retries", "to": "jobs.job"}
                        if model == "job"
                        else {"to": settings.AUTH_USER_MODEL}
                    ),
                ),
            )
        ],
        database_operations=[
            migrations.RunSQL(
                f"DROP INDEX CONCURRENTLY IF EXISTS {old_index}",
                f"CREATE INDEX CONCURRENTLY IF NOT EXISTS {old_index} ON {table} ({column})",
            )
        ],
    )


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("jobs", "0005_task_priority_and_errors"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("state__in", ("queued", "retrying", "running"))),
                fields=["state", "queue", "run_at"],
                name="job_live_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("state", "succeeded"), _negated=True),
                fields=["state", "id"],
                name="job_state_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(fields=["created_at"], name="job_created_idx"),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("backend", ""), _negated=True),
                fields=["backend", "id"],
                name="job_task_idx",
            ),
        ),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                fields=["finished_at"], name="job_finished_cover_idx", include=["queue", "state"]
            ),
        ),
        RemoveIndexConcurrently(model_name="job", name="job_state_queue_idx"),
        RemoveIndexConcurrently(model_name="job", name="job_finished_idx"),
        AddIndexConcurrently(
            model_name="job",
            index=models.Index(
                condition=models.Q(("retry_of__isnull", False)),
                fields=["retry_of"],
                name="job_retry_of_idx",
            ),
        ),
        _unindexed_foreign_key(
            "job", "retry_of", "jobs_job_retry_of_id_376fde47", "jobs_job", "retry_of_id"
        ),
        AddIndexConcurrently(
            model_name="jobevent",
            index=models.Index(
                condition=models.Q(("actor__isnull", False)),
                fields=["actor"],
                name="jobevent_actor_idx",
            ),
        ),
        _unindexed_foreign_key(
            "jobevent", "actor", "jobs_jobevent_actor_id_bcfb58c6", "jobs_jobevent", "actor_id"
        ),
        *(migrations.RunSQL(_set(table), _reset(table)) for table in TABLES),
    ]
