"""The sign-in audit (success, failure, lockout: who, when, from where) is in the admin,
read-only; the staff actions that write audit events name the signed-in user."""

from io import StringIO

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from bimride.access.models import SignInEvent
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, Job, JobEvent
from payments.models import Payment, Refund
from tests.access.conftest import sign_in, signed_in
from tests.conftest import client_for, give_authenticator, totp_now, verified_client
from tests.factories import PASSWORD, UserFactory
from tests.payments.conftest import captured_payment_in

pytestmark = pytest.mark.django_db
ADDRESS = "198.51.100.20"


def events() -> list[tuple]:
    rows = SignInEvent.objects.order_by("id")
    return list(rows.values_list("kind", "username", "ip_address", "path", "reason"))


def test_staff_sign_ins_failures_and_lockouts_are_recorded(otp_required):
    ops = UserFactory(is_staff=True)
    device = give_authenticator(ops)
    name = ops.username
    assert signed_in("admin", sign_in("admin", name, PASSWORD, code=totp_now(device), ip=ADDRESS))
    sign_in("admin", "nobody@example.com", "guess", ip=ADDRESS)
    sign_in("token", name, "wrong", ip=ADDRESS)
    limit = settings.AXES_FAILURE_LIMIT
    for _ in range(limit - 1):  # the account's failures from here reach the limit with the last
        sign_in("browsable_api", name, "wrong", ip=ADDRESS)
    sign_in("token", name, PASSWORD, ip=ADDRESS)

    assert events() == [
        ("success", name, ADDRESS, "/admin/login/", ""),
        ("failure", "nobody@example.com", ADDRESS, "/admin/login/", "password"),
        ("failure", name, ADDRESS, "/api/auth/token", "password"),
        *[("failure", name, ADDRESS, "/api-auth/login/", "password")] * (limit - 2),
        ("locked_out", name, ADDRESS, "/api-auth/login/", "password"),
        ("locked_out", name, ADDRESS, "/api/auth/token", "locked"),
    ]
    locks = SignInEvent.objects.filter(kind="locked_out").values_list("lock", flat=True)
    assert list(locks) == ["account_address", "account_address"]
    first = SignInEvent.objects.order_by("id").first()
    assert first.user == ops and first.at is not None


def test_riders_and_drivers_api_sign_ins_are_not_staff_audit(rider):
    sign_in("token", rider.user.username, PASSWORD)
    sign_in("token", rider.user.username, "wrong")
    assert events() == []


def test_the_audit_is_read_only_in_the_admin(staff):
    sign_in("admin", staff.username, PASSWORD, ip=ADDRESS)
    event = SignInEvent.objects.get()
    ops = verified_client(staff)

    listing = ops.get("/admin/access/signinevent/?kind=success")
    assert listing.status_code == 200 and ADDRESS in listing.content.decode()
    assert ops.get(f"/admin/access/signinevent/{event.pk}/change/").status_code == 200
    assert ops.get("/admin/access/signinevent/add/").status_code == 403
    assert ops.post(f"/admin/access/signinevent/{event.pk}/change/", {}).status_code == 403
    assert (
        ops.post(f"/admin/access/signinevent/{event.pk}/delete/", {"post": "yes"}).status_code
        == 403
    )
    assert SignInEvent.objects.filter(pk=event.pk).exists()


# --- the staff actions name the signed-in user -------------------------------------------------
@pytest.fixture
def dead_letters(db):
    letters = []
    for n in (1, 2):
        job = enqueue("tests.declined", {"n": n}, idempotency_key=f"declined:{n}")
        run_job(job.pk)
        letters.append(DeadLetter.objects.get(job=job))
    return letters


@pytest.fixture
def ops(otp_required):
    return UserFactory(is_staff=True, is_superuser=True)


def test_dead_letter_retry_and_discard_from_the_admin_name_the_user(ops, dead_letters):
    client = verified_client(ops)
    retried, discarded = dead_letters
    client.post("/admin/jobs/deadletter/", {"action": "retry", "_selected_action": [retried.pk]})
    client.post(
        "/admin/jobs/deadletter/",
        {"action": "discard", "_selected_action": [discarded.pk], "apply": "1", "note": "dup"},
    )

    for letter, state in ((retried, "retried"), (discarded, "discarded")):
        letter.refresh_from_db()
        assert letter.resolution == state and letter.resolved_by == ops
        assert JobEvent.objects.get(job=letter.job, state=state).actor == ops


def test_dead_letter_retry_and_discard_through_the_api_name_the_user(ops, dead_letters):
    api = client_for(ops)
    retried, discarded = dead_letters
    assert api.post(f"/api/ops/dead-letters/{retried.pk}/retry", {}).status_code == 201
    response = api.post(f"/api/ops/dead-letters/{discarded.pk}/discard", {"note": "dup"})
    assert response.status_code == 200

    for letter, state in ((retried, "retried"), (discarded, "discarded")):
        letter.refresh_from_db()
        assert letter.resolved_by == ops
        assert JobEvent.objects.get(job=letter.job, state=state).actor == ops


def test_cancelling_queued_jobs_from_the_admin_names_the_user(ops):
    jobs = [enqueue("tests.declined", {"n": n}) for n in (1, 2)]
    verified_client(ops).post(
        "/admin/jobs/job/", {"action": "cancel_jobs", "_selected_action": [j.pk for j in jobs]}
    )
    for job in jobs:
        assert Job.objects.get(pk=job.pk).state == "cancelled"
        assert JobEvent.objects.get(job=job, state="cancelled").actor == ops


@pytest.fixture
def captured(db) -> Payment:
    return captured_payment_in("pi_test_audit")


def test_refunds_from_the_admin_and_the_api_name_the_user(ops, captured):
    verified_client(ops).post(
        "/admin/payments/payment/", {"action": "refund_in_full", "_selected_action": [captured.pk]}
    )
    assert Refund.objects.get(payment=captured).requested_by == ops
    Refund.objects.all().delete()

    response = client_for(ops).post(f"/api/payments/{captured.pk}/refunds", {"amount": 100})
    assert response.status_code == 202, response.content
    assert Refund.objects.get(payment=captured).requested_by == ops


def test_the_command_line_names_the_staff_member_given_with_by(ops, dead_letters):
    retried, discarded = dead_letters
    waiting = enqueue("tests.declined", {"n": 3})
    out = StringIO()
    call_command("jobs", "retry", str(retried.pk), "--by", ops.username.upper(), stdout=out)
    call_command("jobs", "discard", str(discarded.pk), "--note", "dup", "--by", ops.username)
    call_command("jobs", "purge", "--queue", waiting.queue, "--yes", "--by", ops.username)

    assert JobEvent.objects.get(job=retried.job, state="retried").actor == ops
    assert JobEvent.objects.get(job=discarded.job, state="discarded").actor == ops
    purged = JobEvent.objects.get(job=waiting, state="cancelled")
    assert purged.actor == ops and purged.note.startswith("purged from the command line")
    with pytest.raises(CommandError, match="no active staff account"):
        call_command("jobs", "purge", "--queue", "default", "--yes", "--by", "rider@example.com")
