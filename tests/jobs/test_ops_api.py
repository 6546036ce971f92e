"""The job API and the staff-only ops endpoints: who sees what, and dead-letter operations."""

from io import StringIO

import pytest
from django.core.management import call_command

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job
from bimride.jobs.ops import selectors
from tests.conftest import client_for
from tests.factories import RideFactory


@pytest.fixture
def dead_letter(db):
    job = enqueue("tests.declined", {"n": 1})
    run_job(job.pk)
    return DeadLetter.objects.get(job=job)


@pytest.mark.parametrize(
    "path",
    ["/api/ops/queues", "/api/ops/dead-letters"],
)
@pytest.mark.django_db
def test_ops_reads_are_staff_only(path, anon, as_rider, as_driver, as_staff):
    assert anon.get(path).status_code == 401
    assert as_rider.get(path).status_code == 403
    assert as_driver.get(path).status_code == 403
    assert as_staff.get(path).status_code == 200


@pytest.mark.django_db
def test_ops_writes_are_staff_only_and_change_nothing_for_others(dead_letter, as_rider):
    for action in ("retry", "discard"):
        response = as_rider.post(f"/api/ops/dead-letters/{dead_letter.pk}/{action}", {"note": "x"})
        assert response.status_code == 403
        assert response.json()["error"]["code"] == "permission_denied"
    dead_letter.refresh_from_db()
    assert dead_letter.resolution == "" and Job.objects.count() == 1


@pytest.mark.django_db
def test_staff_list_and_retry_a_dead_letter(dead_letter, as_staff):
    listed = as_staff.get("/api/ops/dead-letters").json()
    assert listed["count"] == 1
    assert listed["results"][0]["error_class"] == "PermanentError"

    response = as_staff.post(f"/api/ops/dead-letters/{dead_letter.pk}/retry", {}, format="json")

    assert response.status_code == 201
    new = Job.objects.get(pk=response.json()["id"])
    assert new.name == "tests.declined" and new.retry_of_id == dead_letter.job_id
    assert as_staff.get("/api/ops/dead-letters").json()["count"] == 0
    again = as_staff.post(f"/api/ops/dead-letters/{dead_letter.pk}/retry", {}, format="json")
    assert again.status_code == 409 and again.json()["error"]["code"] == "already_resolved"


@pytest.mark.django_db
def test_an_edited_payload_is_validated_against_the_job_schema(dead_letter, as_staff):
    response = as_staff.post(
        f"/api/ops/dead-letters/{dead_letter.pk}/retry", {"payload": {"n": "x"}}, format="json"
    )
    assert response.status_code == 400
    assert "n" in response.json()["error"]["fields"]
    assert Job.objects.count() == 1


@pytest.mark.django_db
def test_staff_discard_a_dead_letter_with_a_note(dead_letter, as_staff):
    missing = as_staff.post(f"/api/ops/dead-letters/{dead_letter.pk}/discard", {})
    assert missing.status_code == 400 and "note" in missing.json()["error"]["fields"]
    response = as_staff.post(
        f"/api/ops/dead-letters/{dead_letter.pk}/discard", {"note": "duplicate"}, format="json"
    )
    assert response.status_code == 200 and response.json()["resolution"] == "discarded"


@pytest.mark.django_db
def test_queue_stats_count_jobs_by_queue_and_state(dead_letter, as_staff):
    enqueue("tests.effect_bulk", {"n": 1})
    stats = {q["queue"]: q for q in as_staff.get("/api/ops/queues").json()}
    assert stats["bulk"]["depth"]["queued"] == 1
    assert stats["default"]["dead_letters_open"] == 1
    assert stats["default"]["dead_last_hour"] == 1


@pytest.mark.django_db
def test_a_job_is_visible_to_its_subjects_owner_and_staff_only(
    rider, other_rider, driver, as_staff
):
    ride = RideFactory(rider=rider)
    job = enqueue("rides.expire_ride", {"ride_id": ride.pk})
    path = f"/api/jobs/{job.pk}"

    body = client_for(rider.user).get(path).json()
    assert body["name"] == "rides.expire_ride" and body["state"] == "queued"
    assert set(body) >= {"attempts", "max_attempts", "next_attempt_at", "result", "last_error"}
    assert as_staff.get(path).status_code == 200
    for outsider in (other_rider.user, driver.user):
        response = client_for(outsider).get(path)
        assert response.status_code == 404 and response.json()["error"]["code"] == "not_found"
    assert client_for(rider.user).get("/api/jobs/999999").status_code == 404


@pytest.mark.parametrize("query", ["?status=closed", "?status=", "?page_size=0", "?page=x"])
@pytest.mark.django_db
def test_a_dead_letter_filter_out_of_range_answers_400_naming_it(dead_letter, as_staff, query):
    response = as_staff.get("/api/ops/dead-letters" + query)
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {query[1:].split("=")[0]}


def test_a_depth_above_the_cap_is_an_estimate_and_says_so(as_staff, monkeypatch):
    monkeypatch.setattr(selectors, "DEPTH_CAP", 2)  # a backlog of millions, in miniature
    for n in range(3):
        enqueue("tests.effect_bulk", {"n": n})
    enqueue("tests.effect_default", {"n": 1})

    bulk, default = (
        next(q for q in selectors.queue_stats() if q["queue"] == name)
        for name in ("bulk", "default")
    )

    assert bulk["depth"]["queued"] >= 3 and bulk["depth_estimated"] == ["queued"]
    assert default["depth"]["queued"] == 1 and default["depth_estimated"] == []
    body = as_staff.get("/api/ops/queues").json()
    assert next(q for q in body if q["queue"] == "bulk")["depth_estimated"] == ["queued"]
    out = StringIO()
    call_command("jobs", "stats", stdout=out)
    assert "~" in next(line for line in out.getvalue().splitlines() if line.startswith("bulk"))
