"""Tasks of Django's Tasks API on the ledger: a job's priority, backend alias and requested due
time, each failed attempt's exception class and traceback; and a priority on django-q2's broker
rows, which the broker claims highest first (then by due time), with an index in that order."""

from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('jobs', '0004_alerts_and_finished_index'),
        ('django_q', '0019_alter_task_options_alter_ormq_key_alter_ormq_lock_and_more'),
    ]

    operations = [
        migrations.AddField(
            model_name='job',
            name='backend',
            field=models.CharField(blank=True, db_default='', default='', max_length=32),
        ),
        migrations.AddField(
            model_name='job',
            name='priority',
            field=models.SmallIntegerField(db_default=0, default=0),
        ),
        migrations.AddField(
            model_name='job',
            name='run_after',
            field=models.DateTimeField(blank=True, null=True),
        ),
        migrations.AddField(
            model_name='jobevent',
            name='error_class',
            field=models.CharField(blank=True, db_default='', default='', max_length=200),
        ),
        migrations.AddField(
            model_name='jobevent',
            name='traceback',
            field=models.TextField(blank=True, db_default='', default=''),
        ),
        migrations.AlterField(
            model_name='deadletter',
            name='name',
            field=models.CharField(max_length=200),
        ),
        migrations.AlterField(
            model_name='job',
            name='name',
            field=models.CharField(max_length=200),
        ),
        migrations.AddConstraint(
            model_name='job',
            constraint=models.CheckConstraint(condition=models.Q(('priority__gte', -100), ('priority__lte', 100)), name='job_priority_range'),
        ),
        migrations.RunSQL(
            "ALTER TABLE django_q_ormq ADD COLUMN IF NOT EXISTS priority smallint NOT NULL DEFAULT 0;"
            " CREATE INDEX IF NOT EXISTS bimride_ormq_key_priority_lock"
            " ON django_q_ormq (key, priority DESC, lock)",
            "DROP INDEX IF EXISTS bimride_ormq_key_priority_lock;"
            " ALTER TABLE django_q_ormq DROP COLUMN IF EXISTS priority",
        ),
    ]
