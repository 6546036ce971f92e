"""The relay reads what it pushes again in keyset batches, holding no cursor between them."""

from datetime import timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from bimride.jobs.engine import relay as relay_module
from bimride.jobs.engine.broker import job_of
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.q2compat import OrmQ
from bimride.jobs.models import Job

pytestmark = pytest.mark.django_db


def test_the_relay_pushes_every_lost_job_in_batches_without_a_cursor(settings, monkeypatch):
    settings.JOB_RELAY_AFTER = timedelta(0)
    monkeypatch.setattr(relay_module, "BATCH", 2)
    jobs = [enqueue("tests.effect_default", {"n": n}) for n in range(5)]
    OrmQ.objects.all().delete()  # lost: a purged queue
    Job.objects.update(dispatched_at=None)
    with CaptureQueriesContext(connection) as queries:
        assert relay_module.relay()["undispatched"] == 5
    statements = [q["sql"] for q in queries]
    reads = [sql for sql in statements if sql.startswith("SELECT") and "LIMIT 2" in sql]
    assert len(reads) == 3 + 1 + 1  # three batches and an empty read; one empty for orphans
    pushes = [sql for sql in statements if "INSERT INTO django_q_ormq" in sql]
    assert len(pushes) == 3  # 2 + 2 + 1
    assert sorted(job_of(row.payload) for row in OrmQ.objects.all()) == [j.pk for j in jobs]
    assert relay_module.relay()["undispatched"] == 0
