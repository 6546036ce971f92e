"""Tracing, structured logs, metrics, alerts, readiness, the dashboard and `manage.py jobs`."""

import io
import json
import logging
from datetime import timedelta
from io import StringIO

import pytest
from django.core import mail
from django.core.management import CommandError, call_command
from django.test import Client
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import Alert, DeadLetter, Job
from bimride.jobs.ops import alerts
from bimride.tracing import ContextFilter, JsonFormatter
from tests.jobtypes import create_effects_table

pytestmark = pytest.mark.django_db
PICKUP, DROPOFF = {"lat": 52.52, "lng": 13.405}, {"lat": 52.50, "lng": 13.45}


@pytest.fixture(autouse=True)
def _effects(db):
    create_effects_table()


def _dead(n: int) -> list[DeadLetter]:
    jobs = [enqueue("tests.declined", {"n": i}) for i in range(n)]
    for job in jobs:
        run_job(job.pk)
    return list(DeadLetter.objects.all())


@pytest.mark.parametrize(
    ("sent", "kept"),
    [("ride-flow-0001", True), ("bad id with spaces", False), ("x" * 200, False), (None, False)],
)
def test_every_request_gets_a_trace_id_that_its_jobs_carry(as_rider, sent, kept):
    headers = {"HTTP_X_REQUEST_ID": sent} if sent else {}
    response = as_rider.post("/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF}, **headers)
    trace_id = response["X-Request-ID"]
    assert (trace_id == sent) is kept and len(trace_id) >= 8
    ride_jobs = Job.objects.filter(subject=f"ride:{response.json()['id']}")
    assert ride_jobs.count() >= 2 and {j.trace_id for j in ride_jobs} == {trace_id}


def test_job_log_lines_carry_the_job_and_trace_fields():
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.addFilter(ContextFilter())
    handler.setFormatter(JsonFormatter())
    runner_logger = logging.getLogger("bimride.jobs.engine.runner")
    runner_logger.addHandler(handler)
    try:
        job = enqueue("tests.effect_default", {"n": 1})
        Job.objects.filter(pk=job.pk).update(trace_id="trace-abcdef01")
        run_job(job.pk)
    finally:
        runner_logger.removeHandler(handler)
    line = json.loads(stream.getvalue().splitlines()[-1])
    assert line["message"].startswith("job succeeded")
    assert line["job_id"] == job.pk and line["job_name"] == "tests.effect_default"
    assert line["attempt"] == 1 and line["queue"] == "default"
    assert line["trace_id"] == "trace-abcdef01"


def test_the_admin_finds_every_job_of_a_trace(staff, as_rider):
    as_rider.post(
        "/api/rides", {"pickup": PICKUP, "dropoff": DROPOFF}, HTTP_X_REQUEST_ID="find-me-123"
    )
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/jobs/job/?q=find-me-123").content.decode()
    assert "rides.match_ride" in page and "payments.authorize_payment" in page


def test_metrics_are_closed_to_everyone_but_staff_and_the_scrape_token(
    anon, as_rider, staff, settings
):
    assert anon.get("/metrics").status_code == 401
    assert as_rider.get("/metrics").status_code == 403
    settings.METRICS_TOKEN = "scrape-secret"
    assert anon.get("/metrics", HTTP_AUTHORIZATION="Bearer wrong").status_code == 401
    assert anon.get("/metrics", HTTP_AUTHORIZATION="Bearer scrape-secret").status_code == 200
    client = Client()
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200


def test_metrics_report_queues_from_the_database_and_counters_from_the_runner(settings):
    settings.METRICS_TOKEN = "t0ken"
    enqueue("tests.effect_bulk", {"n": 1})
    _dead(1)
    text = Client().get("/metrics", HTTP_AUTHORIZATION="Bearer t0ken").content.decode()
    assert 'bimride_queue_depth{queue="bulk",state="queued"} 1.0' in text
    assert 'bimride_dead_letters_open{queue="default"} 1.0' in text
    assert 'bimride_queue_lag_seconds{queue="bulk"}' in text
    for name in ("job_attempts_total", "job_failures_total", "job_dead_letters_total"):
        assert f'bimride_{name}{{job="tests.declined",queue="default"}}' in text
    assert 'bimride_job_wait_seconds_bucket{job="tests.declined"' in text


def test_an_alert_is_raised_once_emailed_once_and_clears_itself(settings):
    settings.ADMINS = [("Ops", "ops@bimride.example")]
    settings.ALERT_DEAD_LETTERS = 2
    _dead(3)
    assert alerts.check()["raised"] == ["dead_letters"]
    assert len(mail.outbox) == 1 and "dead-lettered" in mail.outbox[0].body
    assert alerts.check()["ongoing"] == ["dead_letters"]
    assert len(mail.outbox) == 1  # once per incident, not every minute
    DeadLetter.objects.update(created_at=timezone.now() - timedelta(hours=1))
    assert alerts.check()["cleared"] == ["dead_letters"]
    alert = Alert.objects.get()
    assert alert.cleared_at is not None and alert.key == "dead_letters"


def test_a_queue_lagging_past_its_sla_raises_an_alert_and_readyz_says_not_ready(settings):
    assert Client().get("/readyz").status_code == 200
    job = enqueue("tests.effect_critical", {"n": 1})
    Job.objects.filter(pk=job.pk).update(run_at=timezone.now() - timedelta(minutes=10))
    assert alerts.check()["raised"] == ["lag:critical"]
    response = Client().get("/readyz")
    assert response.status_code == 503
    assert "critical" in response.json()["checks"]["queues"]["lagging"]
    assert Client().get("/healthz").status_code == 200


def test_the_dashboard_shows_queues_dead_letters_and_running_jobs(staff, as_staff):
    _dead(2)
    running = enqueue("tests.effect_bulk", {"n": 1})
    Job.objects.filter(pk=running.pk).update(state="running", started_at=timezone.now())
    client = Client()
    client.force_login(staff)
    page = client.get("/admin/jobs/job/dashboard/").content.decode()
    assert page.count('class="queue-row"') == 3
    assert 'class="dead-type"' in page and "tests.declined" in page
    assert f"#{running.pk} tests.effect_bulk" in page
    api = {q["queue"]: q for q in as_staff.get("/api/ops/queues").json()}
    assert api["default"]["dead_letters_open"] == 2 and api["bulk"]["depth"]["running"] == 1
    assert Client().get("/admin/jobs/job/dashboard/").status_code == 302  # to the login


def test_the_jobs_command_shows_lists_retries_discards_and_purges():
    letters = _dead(3)
    enqueue("tests.effect_bulk", {"n": 1})
    out = StringIO()
    call_command("jobs", "stats", stdout=out)
    assert "critical" in out.getvalue() and "bulk" in out.getvalue()
    out = StringIO()
    call_command("jobs", "list", "--state", "dead", stdout=out)
    assert out.getvalue().count("tests.declined") == 3
    out = StringIO()
    call_command("jobs", "retry", str(letters[0].pk), stdout=out)
    assert "retried as job" in out.getvalue()
    call_command("jobs", "discard", str(letters[1].pk), "--note", "duplicate", stdout=StringIO())
    with pytest.raises(CommandError, match="1 of 1 refused"):
        call_command("jobs", "discard", str(letters[1].pk), "--note", "again", stderr=StringIO())
    call_command("jobs", "retry", "--all", stdout=StringIO())
    assert not DeadLetter.objects.filter(resolution="").exists()
    out = StringIO()
    call_command("jobs", "purge", "--queue", "bulk", stdout=out)
    assert "add --yes" in out.getvalue() and Job.objects.get(queue="bulk").state == "queued"
    call_command("jobs", "purge", "--queue", "bulk", "--yes", stdout=StringIO())
    assert Job.objects.get(queue="bulk").state == "cancelled"
