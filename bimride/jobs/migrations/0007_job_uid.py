# Each job gets an opaque id (a UUID): a task's result id. Runs on a live ledger without
# rewriting it or blocking its writes: the column is added without a database default (no
# rewrite; jobs written before it keep none, their integer id is still their result id), new
# jobs get theirs from the application, and the unique index is built CONCURRENTLY.

import uuid

from django.db import migrations, models


class Migration(migrations.Migration):
    atomic = False  # CREATE INDEX CONCURRENTLY runs outside a transaction

    dependencies = [("jobs", "0006_ledger_at_scale")]

    operations = [
        migrations.AddField(
            model_name="job",
            name="uid",
            field=models.UUIDField(blank=True, editable=False, null=True),
        ),
        migrations.AlterField(  # the application's default: no SQL, existing rows keep NULL
            model_name="job",
            name="uid",
            field=models.UUIDField(blank=True, default=uuid.uuid4, editable=False, null=True),
        ),
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AddConstraint(
                    model_name="job",
                    constraint=models.UniqueConstraint(
                        condition=models.Q(("uid__isnull", False)),
                        fields=("uid",),
                        name="job_uid_uniq",
                    ),
                )
            ],
            database_operations=[
                migrations.RunSQL(
                    "CREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS job_uid_uniq ON jobs_job (uid)"
                    " WHERE uid IS NOT NULL",
                    reverse_sql="DROP INDEX CONCURRENTLY IF EXISTS job_uid_uniq",
                )
            ],
        ),
    ]
