"""Ops staff fix failed jobs from the admin: the ledger, the audit trail, dead-letter actions."""

import re
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test import Client
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.q2compat import OrmQ, SignedPackage
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.ops.listing import COUNT_CAP


@pytest.fixture
def admin_client(staff) -> Client:
    client = Client()
    client.force_login(staff)
    return client


@pytest.fixture
def dead_letter(db):
    job = enqueue("tests.declined", {"n": 1}, idempotency_key="declined:1")
    run_job(job.pk)
    return DeadLetter.objects.get(job=job)


def test_the_job_page_shows_its_audit_trail(admin_client, dead_letter):
    page = admin_client.get(f"/admin/jobs/job/{dead_letter.job_id}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    trail = re.findall(r'<td class="field-state">\s*<p>(\w+)</p>', html)
    assert trail == ["queued", "running", "dead"]
    assert "Your card was declined." in html


@pytest.mark.parametrize(
    "query",
    ["state=dead", "queue=default", "name=tests.declined", "q=declined%3A1", "q=999"],
)
def test_the_ledger_filters_and_searches(admin_client, dead_letter, query):
    page = admin_client.get(f"/admin/jobs/job/?{query}")
    assert page.status_code == 200
    found = f"/admin/jobs/job/{dead_letter.job_id}/change/" in page.content.decode()
    assert found is (query != "q=999")


def test_the_retry_action_requeues_the_selected_dead_letters(admin_client, dead_letter):
    response = admin_client.post(
        "/admin/jobs/deadletter/",
        {"action": "retry", "_selected_action": [dead_letter.pk]},
        follow=True,
    )
    assert response.status_code == 200
    dead_letter.refresh_from_db()
    assert dead_letter.resolution == "retried"
    assert Job.objects.get(pk=dead_letter.retry_job_id).state == "queued"


def test_retry_with_an_edited_payload_refuses_a_payload_that_breaks_the_schema(
    admin_client, dead_letter
):
    url = f"/admin/jobs/deadletter/{dead_letter.pk}/retry-edited/"
    assert "&quot;n&quot;: 1" in admin_client.get(url).content.decode()

    refused = admin_client.post(url, {"payload": '{"n": "lots"}'})
    assert refused.status_code == 200
    assert "does not fit this job" in refused.content.decode()
    assert Job.objects.count() == 1

    accepted = admin_client.post(url, {"payload": '{"n": 2}', "note": "fixed"})
    dead_letter.refresh_from_db()
    assert accepted.status_code == 302 and dead_letter.retry_job.payload == {"n": 2}
    assert dead_letter.note == "fixed"


def test_discarding_asks_for_a_note_then_closes_the_dead_letters(admin_client, dead_letter):
    form = admin_client.post(
        "/admin/jobs/deadletter/", {"action": "discard", "_selected_action": [dead_letter.pk]}
    )
    assert form.status_code == 200 and "Say why" in form.content.decode()
    admin_client.post(
        "/admin/jobs/deadletter/",
        {"action": "discard", "_selected_action": [dead_letter.pk], "apply": "1", "note": "dup"},
    )
    dead_letter.refresh_from_db()
    assert dead_letter.resolution == "discarded" and dead_letter.note == "dup"


@pytest.mark.parametrize(
    "path",
    [
        "/admin/django_q/failure/",
        "/admin/django_q/success/",
        "/admin/django_q/schedule/",
        "/admin/django_q/ormq/",
        "/admin/rides/ride/",
        "/admin/jobs/deadletter/",
    ],
)
def test_the_ops_pages_render(admin_client, dead_letter, path):
    assert admin_client.get(path).status_code == 200


@pytest.fixture
def queued_rows(db):
    """A job's broker row, one of django-q2's own (a task package), and two it cannot read."""
    job = enqueue("tests.effect_default", {"n": 1}, delay=timedelta(minutes=5))
    package = {"id": "0a1b2c", "name": "tidy", "func": "math.floor", "args": (1,), "kwargs": {}}
    OrmQ.objects.create(key="default", payload=SignedPackage.dumps(package), lock=timezone.now())
    for payload in ('{"job": "no name"}', "not a signed package"):
        OrmQ.objects.create(key="default", payload=payload, lock=timezone.now())
    return job


def column(html: str, name: str) -> list[str]:
    return re.findall(rf'<td class="field-{name}">(.*?)</td>', html)


def test_the_queued_tasks_page_shows_each_row_the_same_every_time(admin_client, queued_rows):
    job = queued_rows
    pages = [admin_client.get("/admin/django_q/ormq/") for _ in range(2)]
    assert [page.status_code for page in pages] == [200, 200]
    first, second = (page.content.decode() for page in pages)
    assert column(first, "task_id") == column(second, "task_id")
    assert sorted(column(first, "task_id")) == ["*BadSignature", "*KeyError", "-", "0a1b2c"]
    assert f"tests.effect_default#{job.pk}" in column(first, "name")
    assert f"/admin/jobs/job/{job.pk}/change/" in first
    assert "bimride.jobs.engine.runner.deliver" in column(first, "func")


def test_the_queued_task_page_of_a_job_shows_its_job(admin_client, queued_rows):
    row = OrmQ.objects.get(lock=queued_rows.run_at)
    page = admin_client.get(f"/admin/django_q/ormq/{row.pk}/change/")
    assert page.status_code == 200
    html = page.content.decode()
    assert f"tests.effect_default#{queued_rows.pk}" in html and "(" + str(queued_rows.pk) in html


def test_the_job_list_counts_to_a_cap_and_estimates_the_whole_ledger(admin_client, dead_letter):
    with connection.cursor() as cursor:
        cursor.execute(
            "INSERT INTO jobs_job (name, queue, payload, state, attempts, max_attempts, timeout,"
            " trace_id, subject, created_at, run_at, worker, last_error)"
            " SELECT 'tests.effect_bulk', 'bulk', '{}', 'succeeded', 1, 3, 10, '', '', now(),"
            " now(), '', '' FROM generate_series(1, %s)",
            [COUNT_CAP + 1],
        )
        cursor.execute("ANALYZE jobs_job")

    def label(query: str) -> str:
        html = admin_client.get(f"/admin/jobs/job/?{query}").content.decode()
        paginator = re.search(r'<p class="paginator">(.*?)</p>', html, re.S)[1]
        return re.search(r"(about [\d,]+ \(estimated\)|more than [\d,]+|[\d,]+) jobs?", paginator)[
            0
        ]

    assert re.fullmatch(r"about [\d,]+ \(estimated\) jobs", label(""))
    assert label("state__exact=succeeded") == "more than 10,000 jobs"
    assert label("state__exact=dead") == "1 job"


def test_the_date_drill_down_lists_the_days_that_have_jobs(admin_client):
    jobs = [enqueue("tests.effect_bulk", {"n": n}) for n in range(2)]
    for job, day in zip(jobs, (3, 5), strict=True):
        Job.objects.filter(pk=job.pk).update(created_at=datetime(2026, 3, day, 10, tzinfo=UTC))
    html = admin_client.get("/admin/jobs/job/").content.decode()
    days = re.findall(r"created_at__day=(\d+)", html)
    assert sorted(set(days)) == ["3", "5"]
