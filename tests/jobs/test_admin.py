"""Ops staff fix failed jobs from the admin: the ledger, the audit trail, dead-letter actions."""

import re

import pytest
from django.test import Client

from bimride.jobs.enqueue import enqueue
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.runner import run_job


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
