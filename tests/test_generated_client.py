"""The API contract as an app builds on it: a typed client generated from the live /api/schema/
by openapi-python-client (at test time, into a tmp dir) rides a whole ride, reads a job, handles
a 409 and a 429 as typed errors and retries a dead letter, through real workers and the Stripe
and email provider stand-ins. An answer the schema does not document raises in the client."""

import importlib
import subprocess
import sys
from pathlib import Path

import pytest
import requests
from rest_framework.authtoken.models import Token

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.models import DeadLetter, Job
from tests.conftest import wait_until
from tests.factories import UserFactory

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
CONFIG = "package_name_override: bimride_client\npost_hooks: []\n"
BERLIN = ({"lat": 52.52, "lng": 13.405}, {"lat": 52.5, "lng": 13.45})
PASSWORD = "a-long-passphrase-42"
# The live server's request threads keep their database connection while a client keeps the
# HTTP connection open, which would hold the test database at teardown.
ONE_SHOT = {"Connection": "close"}


@pytest.fixture
def client_package(live_server, tmp_path, monkeypatch):
    """The client package generated from the live server's schema, imported."""
    schema = requests.get(live_server.url + "/api/schema/?format=json", timeout=30)
    assert schema.status_code == 200
    (tmp_path / "schema.json").write_bytes(schema.content)
    (tmp_path / "config.yml").write_text(CONFIG)
    generated = subprocess.run(
        [
            *(str(GENERATOR), "generate", "--path", str(tmp_path / "schema.json")),
            *("--output-path", str(tmp_path / "bimride_client"), "--meta", "none"),
            *("--config", str(tmp_path / "config.yml")),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert generated.returncode == 0, generated.stdout + generated.stderr
    assert "Warning" not in generated.stdout, generated.stdout
    monkeypatch.syspath_prepend(str(tmp_path))
    package = importlib.import_module("bimride_client")
    importlib.import_module("bimride_client.models")
    yield package
    for name in [n for n in sys.modules if n.split(".")[0] == "bimride_client"]:
        del sys.modules[name]


@pytest.fixture
def workers(start_cluster, postmark_standin):
    """A worker per queue; email goes to the (default) email provider's stand-in."""
    email = postmark_standin.settings()
    return [start_cluster(queue, **email) for queue in ("critical", "default", "bulk")]


def signed_in(api, live_server, user):
    """The generated client, signed in as `user` with their API token."""
    return api.AuthenticatedClient(
        base_url=live_server.url,
        token=Token.objects.get_or_create(user=user)[0].key,
        prefix="Token",
        raise_on_unexpected_status=True,
        headers=ONE_SHOT,
    )


class Operations:
    """The client's operation modules by operationId (`ops.api_rides_create.sync(...)`)."""

    def __init__(self, package):
        self.package = package.__name__

    def __getattr__(self, operation_id: str):
        tag = operation_id.split("_")[1]  # api_<tag>_...: one subpackage per tag
        return importlib.import_module(f"{self.package}.api.{tag}.{operation_id}")


def test_a_generated_client_rides_a_whole_ride_and_handles_every_answer(
    client_package, workers, live_server
):
    api, models = client_package, client_package.models
    ops = Operations(api)
    anon = api.Client(base_url=live_server.url, raise_on_unexpected_status=True, headers=ONE_SHOT)

    def register(role: str, email: str):
        body = models.RegisterInputRequest(
            email=email, password=PASSWORD, name=role.title(), role=models.RoleEnum(role)
        )
        account = ops.api_auth_register_create.sync(client=anon, body=body)
        assert isinstance(account, models.Account), account
        return api.AuthenticatedClient(
            base_url=live_server.url,
            token=account.token,
            prefix="Token",
            raise_on_unexpected_status=True,
            headers=ONE_SHOT,
        )

    as_rider = register("rider", "ada@example.com")
    as_driver = register("driver", "dan@example.com")
    available = ops.api_drivers_me_availability_create.sync(
        client=as_driver, body=models.AvailabilityInputRequest(available=True)
    )
    assert available.available is True

    # request with an idempotency key: a repeat replays the first answer
    pickup, dropoff = (models.PointRequest(**point) for point in BERLIN)
    request = models.RideRequestInputRequest(pickup=pickup, dropoff=dropoff)
    first = ops.api_rides_create.sync_detailed(
        client=as_rider, body=request, idempotency_key="ride-from-the-app-1"
    )
    again = ops.api_rides_create.sync_detailed(
        client=as_rider, body=request, idempotency_key="ride-from-the-app-1"
    )
    assert first.status_code == again.status_code == 201
    ride = first.parsed
    assert isinstance(ride, models.Ride) and ride.status == models.RideStatusEnum.REQUESTED
    assert again.parsed.id == ride.id and again.headers["Idempotent-Replayed"] == "true"

    # a 409, typed: a second ride while one is under way
    conflict = ops.api_rides_create.sync_detailed(
        client=as_rider, body=request, idempotency_key="ride-from-the-app-2"
    )
    assert conflict.status_code == 409 and isinstance(conflict.parsed, models.Error)
    assert conflict.parsed.error.code == "ride_in_progress"

    accepted = ops.api_rides_accept_create.sync(client=as_driver, ride_id=ride.id)
    assert accepted.status == models.RideStatusEnum.ACCEPTED
    twice = ops.api_rides_accept_create.sync_detailed(client=as_driver, ride_id=ride.id)
    assert twice.status_code == 409 and twice.parsed.error.code == "invalid_transition"
    started = ops.api_rides_start_create.sync(client=as_driver, ride_id=ride.id)
    assert started.status == models.RideStatusEnum.IN_PROGRESS
    completed = ops.api_rides_complete_create.sync(
        client=as_driver,
        ride_id=ride.id,
        body=models.RideCompleteInputRequest(distance_km="4.30", duration_min=16),
    )
    assert completed.status == models.RideStatusEnum.COMPLETED and completed.fare.amount > 0

    def paid_and_receipted():
        now = ops.api_rides_retrieve.sync(client=as_rider, ride_id=ride.id)
        done = now.payment_status == "captured" and now.receipt_status == "sent"
        return now if done else None

    final = wait_until(paid_and_receipted, timeout=60, what="payment captured, receipt sent")

    # a job's status, as its owner sees it
    capture = next(j for j in final.jobs if j.name == "payments.capture_payment")
    job = ops.api_jobs_retrieve.sync(client=as_rider, job_id=capture.id)
    assert isinstance(job, models.Job) and job.state == models.StateEnum.SUCCEEDED
    assert job.attempts >= 1 and job.result["status"] == "captured"

    # a 429, typed, with Retry-After: ride requests past THROTTLE_RIDE_CREATE (30/min)
    for n in range(40):
        answer = ops.api_rides_create.sync_detailed(
            client=as_rider, body=request, idempotency_key=f"tap-{n}"
        )
        if answer.status_code == 429:
            break
        assert answer.status_code in (201, 409), answer
    assert answer.status_code == 429 and isinstance(answer.parsed, models.Error)
    assert answer.parsed.error.code == "throttled" and int(answer.headers["Retry-After"]) >= 0


def test_staff_retry_a_dead_letter_with_an_edited_payload_through_the_generated_client(
    client_package, workers, live_server
):
    api, models = client_package, client_package.models
    ops = Operations(api)
    dead = enqueue("tests.declined", {"n": 1})
    wait_until(lambda: DeadLetter.objects.filter(job=dead).exists(), what="the dead letter")
    as_staff = signed_in(api, live_server, UserFactory(is_staff=True, is_superuser=True))

    listed = ops.api_ops_dead_letters_list.sync(client=as_staff)
    letter = next(d for d in listed.results if d.job.id == dead.pk)
    assert letter.payload == {"n": 1}
    bad_page = ops.api_ops_dead_letters_list.sync_detailed(client=as_staff, page_size=101)
    assert bad_page.status_code == 400 and "page_size" in bad_page.parsed.error.fields.to_dict()

    body = models.DeadLetterRetryInputRequest(payload={"n": 2}, note="Fixed the payload.")
    retry = ops.api_ops_dead_letters_retry_create.sync(
        client=as_staff, dead_letter_id=letter.id, body=body
    )
    assert isinstance(retry, models.Job) and retry.name == "tests.declined"
    assert Job.objects.get(pk=retry.id).payload == {"n": 2}
    again = ops.api_ops_dead_letters_retry_create.sync_detailed(
        client=as_staff, dead_letter_id=letter.id, body=body
    )
    assert again.status_code == 409 and again.parsed.error.code == "already_resolved"
    # the retried job runs (and, declined again, dies again): its status says so
    wait_until(
        lambda: (
            ops.api_jobs_retrieve.sync(client=as_staff, job_id=retry.id).state
            == models.StateEnum.DEAD
        ),
        what="the retried job to run",
    )


def test_an_app_registers_its_phone_and_chooses_its_notifications_through_the_generated_client(
    client_package, live_server
):
    api, models = client_package, client_package.models
    ops = Operations(api)
    as_rider = signed_in(api, live_server, UserFactory())
    body = models.DeviceInputRequest(
        token="fcm-registration-token", platform=models.PlatformEnum.IOS, locale="de-DE"
    )
    created = ops.api_devices_create.sync_detailed(client=as_rider, body=body)
    assert created.status_code == 201 and isinstance(created.parsed, models.Device)
    again = ops.api_devices_create.sync_detailed(client=as_rider, body=body)
    assert again.status_code == 200 and again.parsed.id == created.parsed.id
    listed = ops.api_devices_list.sync(client=as_rider)
    assert [d.id for d in listed.results] == [created.parsed.id]
    bad = ops.api_devices_create.sync_detailed(
        client=as_rider,
        body=models.DeviceInputRequest(token="t" * 1025, platform=models.PlatformEnum.ANDROID),
    )
    assert bad.status_code == 400 and "token" in bad.parsed.error.fields.to_dict()

    chosen = ops.api_me_notifications_partial_update.sync(
        client=as_rider,
        body=models.PatchedPreferencesInputRequest(
            preferences=[
                models.PreferenceChangeRequest(
                    kind=models.NotificationKindEnum.RIDE_COMPLETED, email=False
                )
            ]
        ),
    )
    receipt = next(p for p in chosen.preferences if p.kind == "ride_completed")
    assert receipt.push is True and receipt.email is False
    arriving = next(
        p
        for p in ops.api_me_notifications_retrieve.sync(client=as_rider).preferences
        if p.kind == "driver_arriving"
    )
    assert arriving.email is None

    deleted = ops.api_devices_destroy.sync_detailed(client=as_rider, device_id=created.parsed.id)
    assert deleted.status_code == 204
    gone = ops.api_devices_destroy.sync_detailed(client=as_rider, device_id=created.parsed.id)
    assert gone.status_code == 404 and gone.parsed.error.code == "not_found"
