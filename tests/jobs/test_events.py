"""Declared events: one declaration per event, checked when published, named by subscribers."""

from io import StringIO

import pytest
from django.core.management import call_command
from django.db import transaction

from bimride.jobs import Event, Id, JobContext, JobPayloadError, enqueue, job, publish
from bimride.jobs.engine import checks, events, registry
from bimride.jobs.models import Job
from payments.events import PaymentFailed
from rides.events import RideCancelled, RideCompleted


@pytest.fixture
def scratch():
    """Declarations and job types made by one test only."""
    declared, types = dict(events._declared), dict(registry._types)
    subscribers = {name: list(jobs) for name, jobs in registry._subscribers.items()}
    yield
    events._declared.clear(), events._declared.update(declared)
    registry._types.clear(), registry._types.update(types)
    registry._subscribers.clear(), registry._subscribers.update(subscribers)


@pytest.mark.parametrize(
    "make, field",
    [
        (lambda: RideCompleted(ride_id="7"), "ride_id"),
        (lambda: RideCompleted(ride_id=0), "ride_id"),
        (lambda: RideCompleted(ride_id=True), "ride_id"),
        (lambda: RideCancelled(ride_id=7, cancelled_by=None), "cancelled_by"),
        (lambda: PaymentFailed(ride_id=1, payment_id=2, amount=9.5, currency="usd"), "amount"),
    ],
    ids=["a string for an id", "id 0", "a bool for an id", "None for a str", "a float for an int"],
)
def test_a_payload_that_does_not_fit_its_event_is_refused_where_it_is_made(make, field):
    with pytest.raises(JobPayloadError) as refused:
        make()
    assert list(refused.value.errors) == [field]


def test_an_event_missing_a_field_or_given_an_unknown_one_fails_at_the_call():
    with pytest.raises(TypeError):
        RideCompleted()
    with pytest.raises(TypeError):
        RideCompleted(ride_id=1, fare=100)


@pytest.mark.django_db(transaction=True)
def test_a_bad_payload_fails_the_publishers_transaction_and_enqueues_nothing():
    with pytest.raises(JobPayloadError), transaction.atomic():
        publish(RideCompleted(ride_id=1))
        publish(RideCancelled(ride_id=1, cancelled_by=3))
    assert not Job.objects.exists()


def test_publish_takes_a_declared_event_only():
    with pytest.raises(TypeError, match="declared event"):
        publish("ride.completed")


def test_a_subscription_to_a_name_instead_of_a_declared_event_fails_at_import(scratch):
    with pytest.raises(TypeError, match="on= takes declared events"):

        @job("tests.typo", on="ride.complete")
        def typo(payload: dict, ctx: JobContext) -> None: ...


@pytest.mark.django_db
def test_a_subscriber_without_a_payload_of_its_own_takes_the_events():
    capture = registry.get("payments.capture_payment")
    assert capture.payload is RideCompleted.schema
    with pytest.raises(JobPayloadError):
        enqueue("payments.capture_payment", {"ride_id": "seven"})
    assert enqueue("payments.capture_payment", {"ride_id": 7}).payload == {"ride_id": 7}


def test_an_optional_field_may_be_left_out_and_is_published_as_null():
    assert RideCancelled(ride_id=3, cancelled_by="rider").payload() == {
        "ride_id": 3,
        "cancelled_by": "rider",
        "after_accept_seconds": None,
    }


@pytest.mark.django_db
def test_a_field_with_a_default_may_be_left_out_of_a_subscribers_payload():
    told = {"ride_id": 1, "payment_id": 2, "amount": 100, "currency": "usd"}
    assert enqueue("notifications.send_payment_failed", told).payload == told
    assert PaymentFailed(**told).payload()["reason"] == ""


def test_a_declaration_that_cannot_be_a_payload_fails_at_import(scratch):
    with pytest.raises(TypeError, match="an event's fields are"):

        class Moved(Event, name="tests.moved"):
            to: dict

    with pytest.raises(ValueError, match="event names are"):

        class Badly(Event, name="Tests Badly"):
            n: int

    with pytest.raises(ValueError, match="declared twice"):

        class Completed(Event, name="ride.completed"):
            ride_id: Id


def test_the_checks_name_events_without_subscribers_and_subscriptions_to_undeclared_events(
    scratch,
):
    def found():
        return {(message.id, message.msg) for message in checks.events_check(None)}

    before = found()  # of the product's declarations: none (other tests' may add some)
    assert not {f for f in before if not f[1].startswith(("Event tests.", "tests."))}

    class Forgotten(Event, name="tests.forgotten"):
        n: int

    registry.add(
        registry.JobType(
            "tests.listens", print, "default", registry.DEFAULT_RETRY, 10, None, ("tests.nobody",)
        )
    )
    assert found() - before == {
        ("jobs.W001", "Event tests.forgotten (tests.jobs.test_events) is published to no job."),
        ("jobs.E007", "tests.listens subscribe to 'tests.nobody', which no app declares."),
    }


def test_manage_jobs_events_lists_each_event_with_its_declaration_and_subscribers():
    out = StringIO()
    call_command("jobs", "events", stdout=out)
    text = out.getvalue()
    assert "ride.completed  (rides.events.RideCompleted: ride_id)\n" in text
    assert "    -> payments.capture_payment\n    -> notifications.push_ride_completed\n" in text
    assert "account.registered  (rides.events.AccountRegistered: user_id)" in text
