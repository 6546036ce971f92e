"""Payment jobs through `run_job`: Stripe's errors by kind, retried or dead-lettered."""

import pytest
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter, ProviderBudget
from payments import tasks
from tests.payments.conftest import payment_of, ride_in

pytestmark = pytest.mark.django_db


def authorize_job(ride):
    return enqueue(tasks.authorize_payment.name, {"ride_id": ride.pk})


@pytest.mark.parametrize("kind", ["500", "slow"])
def test_server_errors_and_timeouts_are_retried(stripe_standin, kind):
    ride = ride_in("requested")
    job = authorize_job(ride)
    stripe_standin.fail_next(kind, path="payment_intents", delay=3)
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "retrying" and "StripeUnavailable" in job.last_error
    assert job.max_attempts == 8  # the payments retry policy
    assert payment_of(ride).status == "pending"


def test_a_429_pauses_stripe_and_snoozes_the_job_without_using_an_attempt(stripe_standin):
    ride = ride_in("requested")
    job = authorize_job(ride)
    stripe_standin.fail_next("429", path="payment_intents")
    run_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.attempts, job.snoozes, job.last_error) == ("queued", 0, 1, "")
    assert job.run_at > timezone.now() and not DeadLetter.objects.exists()
    assert job.events.filter(state="snoozed", note__contains="stripe answered 429").exists()
    assert ProviderBudget.objects.get(name="stripe").paused_until > timezone.now()
    assert payment_of(ride).status == "pending"


@pytest.mark.parametrize(
    "kind, error_class, code",
    [
        ("decline", "PaymentDeclined", "card_declined"),
        ("invalid", "PaymentRejected", "parameter_invalid_integer"),
    ],
)
def test_declines_and_invalid_requests_are_dead_lettered_at_once(
    stripe_standin, kind, error_class, code
):
    ride = ride_in("requested")
    job = authorize_job(ride)
    stripe_standin.fail_next(kind, path="payment_intents")
    run_job(job.pk)
    letter = DeadLetter.objects.get(job=job)
    assert letter.attempts == 1 and letter.error_class == error_class
    assert letter.error_message.startswith(f"{code}:")
    payment = payment_of(ride)
    assert payment.status == "failed" and payment.failure_code == code
    ride.refresh_from_db()
    assert ride.payment_status == "failed"


def test_retries_running_out_fail_the_payment(stripe_standin, settings):
    ride = ride_in("requested")
    job = authorize_job(ride)
    job.max_attempts = 1
    job.save()
    stripe_standin.fail_next("500", path="payment_intents")
    run_job(job.pk)
    job.refresh_from_db()
    assert job.state == "dead"
    payment = payment_of(ride)
    assert payment.status == "failed" and payment.failure_code == "retries_exhausted"
