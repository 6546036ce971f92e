"""Migration 0006 (the ledger at scale) runs on a database that already holds jobs: live and
finished jobs, their audit rows, a dead letter and a retry keep everything, and the indexes and
autovacuum settings are in place afterwards (and gone when it is reversed)."""

import pytest
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from tests.jobtypes import create_effects_table

BEFORE, AFTER = ("jobs", "0005_task_priority_and_errors"), ("jobs", "0006_ledger_at_scale")
LATEST = ("jobs", "0008_concurrency_keys_snoozes_budgets")
NEW_INDEXES = {
    "job_live_idx",
    "job_state_idx",
    "job_created_idx",
    "job_task_idx",
    "job_retry_of_idx",
    "jobevent_actor_idx",
    "job_finished_cover_idx",
}
OLD_INDEXES = {"job_state_queue_idx", "job_finished_idx", "jobs_job_retry_of_id_376fde47"}


def migrate(target) -> None:
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate([target])


def indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT indexname FROM pg_indexes WHERE tablename IN ('jobs_job', 'jobs_jobevent')"
        )
        return {row[0] for row in cursor.fetchall()}


def reloptions(table: str) -> list[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT reloptions FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0] or []


def ledger() -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT j.id, j.state, j.retry_of_id, count(e.id) FROM jobs_job j"
            " LEFT JOIN jobs_jobevent e ON e.job_id = j.id GROUP BY j.id ORDER BY j.id"
        )
        return cursor.fetchall()


@pytest.mark.django_db(transaction=True)
def test_the_migration_keeps_every_job_and_adds_its_indexes_on_a_filled_database():
    create_effects_table()
    migrate(BEFORE)
    try:
        assert indexes() >= OLD_INDEXES and not NEW_INDEXES & indexes()
        # jobs written and run by the code of this release, on the tables as 0005 left them
        # (with the columns 0007 and 0008 add, which this release writes)
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE jobs_job ADD COLUMN uid uuid,"
                " ADD COLUMN snoozes integer NOT NULL DEFAULT 0,"
                " ADD COLUMN concurrency_key varchar(200) NOT NULL DEFAULT ''"
            )
        queued = enqueue("tests.effect_bulk", {"n": 1})
        done = enqueue("tests.effect_bulk", {"n": 2})
        dead = enqueue("tests.declined", {"n": 3})
        for job in (done, dead):
            run_job(job.pk)
        with connection.cursor() as cursor:  # a retry of the dead job, as the admin links it
            cursor.execute(
                "UPDATE jobs_job SET retry_of_id = %s WHERE id = %s", [dead.pk, queued.pk]
            )
        before = ledger()
        assert [row[1] for row in before] == ["queued", "succeeded", "dead"]

        migrate(AFTER)

        assert ledger() == before
        assert indexes() >= NEW_INDEXES and not OLD_INDEXES & indexes()
        for table in ("jobs_job", "jobs_jobevent"):
            assert "autovacuum_vacuum_scale_factor=0.01" in reloptions(table)
        run_job(queued.pk)  # the queue works on the migrated tables
        assert {row[0]: row[1] for row in ledger()}[queued.pk] == "succeeded"

        migrate(BEFORE)  # and it can be reversed
        assert indexes() >= OLD_INDEXES and reloptions("jobs_job") == []
    finally:
        migrate(AFTER)
        with connection.cursor() as cursor:
            cursor.execute(
                "ALTER TABLE jobs_job DROP COLUMN IF EXISTS uid,"
                " DROP COLUMN IF EXISTS snoozes, DROP COLUMN IF EXISTS concurrency_key"
            )
        migrate(LATEST)


def job_as_written_before() -> int:
    """A queued job as the releases before 0007 wrote it (none of its columns); its id."""
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs_job (name, queue, payload, state, attempts, max_attempts,"
            " timeout, trace_id, subject, worker, created_at, run_at, last_error, priority,"
            " backend) VALUES ('tests.effect_bulk', 'bulk', '{\"n\": 1}', 'queued', 0, 1, 5,"
            " '', '', '', now(), now(), '', 0, '') RETURNING id"
        )
        return cursor.fetchone()[0]


@pytest.mark.django_db(transaction=True)
def test_jobs_written_before_opaque_ids_keep_none_and_new_ones_get_a_unique_one():
    create_effects_table()
    migrate(AFTER)
    try:
        old = job_as_written_before()
        migrate(LATEST)
        new = enqueue("tests.effect_bulk", {"n": 2})
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, uid FROM jobs_job ORDER BY id")
            uids = dict(cursor.fetchall())
        assert uids[old] is None and uids[new.pk] == new.uid and new.uid.version == 4
        assert "job_uid_uniq" in indexes()
        migrate(AFTER)
        assert "job_uid_uniq" not in indexes()
    finally:
        migrate(LATEST)


@pytest.mark.django_db(transaction=True)
def test_jobs_written_before_keys_and_snoozes_run_after_the_migration_and_it_reverses():
    create_effects_table()
    migrate(("jobs", "0007_job_uid"))
    try:
        old = job_as_written_before()
        migrate(LATEST)
        assert "job_concurrency_key_idx" in indexes()
        run_job(old)
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT state, snoozes, concurrency_key FROM jobs_job WHERE id = %s", [old]
            )
            assert cursor.fetchone() == ("succeeded", 0, "")
        migrate(("jobs", "0007_job_uid"))
        assert "job_concurrency_key_idx" not in indexes()
    finally:
        migrate(LATEST)
