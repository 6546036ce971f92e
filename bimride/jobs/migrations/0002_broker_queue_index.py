"""Index django-q2's broker table by queue and due time: the broker claims in that order."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("jobs", "0001_job_ledger"), ("django_q", "0018_task_success_index")]

    operations = [
        migrations.RunSQL(
            "CREATE INDEX IF NOT EXISTS bimride_ormq_key_lock ON django_q_ormq (key, lock)",
            "DROP INDEX IF EXISTS bimride_ormq_key_lock",
        )
    ]
