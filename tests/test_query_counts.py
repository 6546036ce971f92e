"""Every list and detail endpoint answers in a fixed number of queries, however many rows it
shows: a page of 1 and a page of 6 cost the same."""

import pytest

from bimride.authentication import tokens
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import DeadLetter
from payments.models import Payment, Refund
from rides.models import RideOffer
from tests.factories import RideFactory
from tests.payments.conftest import captured_payment_in

pytestmark = pytest.mark.django_db


def ride_with_jobs(**fields):
    ride = RideFactory(**fields)
    for name in ("rides.match_ride", "rides.expire_ride"):
        enqueue(name, {"ride_id": ride.pk})
    return ride


def assert_flat(client, path: str, add_rows, queries: int, assert_max) -> None:
    """`path` answers in at most `queries` queries with one row and with six (the token's own
    query included: the first request of a token in a process reads it)."""
    add_rows(1)
    for rows in (1, 6):
        tokens.forget_all()
        with assert_max(queries):
            answer = client.get(path)
        assert answer.status_code == 200, answer.content
        body = answer.json()
        shown = body["results"] if isinstance(body, dict) and "results" in body else body
        if isinstance(shown, list):
            assert len(shown) == rows, path
        add_rows(5)


def test_the_ride_list_of_a_rider(as_rider, rider, django_assert_max_num_queries):
    add = lambda n: [ride_with_jobs(rider=rider) for _ in range(n)]  # noqa: E731
    # token, count, page (with rider and driver), every ride's jobs
    assert_flat(as_rider, "/api/rides", add, 4, django_assert_max_num_queries)


def test_the_ride_list_of_a_driver(as_driver, driver, django_assert_max_num_queries):
    add = lambda n: [ride_with_jobs(driver=driver, status="completed") for _ in range(n)]  # noqa: E731
    assert_flat(as_driver, "/api/rides", add, 4, django_assert_max_num_queries)


def test_the_ride_list_of_staff(as_staff, django_assert_max_num_queries):
    add = lambda n: [ride_with_jobs() for _ in range(n)]  # noqa: E731
    assert_flat(as_staff, "/api/rides", add, 4, django_assert_max_num_queries)


def test_a_drivers_offers(as_driver, driver, django_assert_max_num_queries):
    def add(n):
        for _ in range(n):
            RideOffer.objects.create(ride=ride_with_jobs(), driver=driver, distance_km=1)

    assert_flat(as_driver, "/api/drivers/me/offers", add, 4, django_assert_max_num_queries)


def test_a_ride(as_rider, rider, django_assert_max_num_queries):
    ride = ride_with_jobs(rider=rider)
    # token, the ride with rider and driver, its jobs
    assert_flat(as_rider, f"/api/rides/{ride.pk}", lambda n: None, 3, django_assert_max_num_queries)


def test_a_job(as_rider, rider, django_assert_max_num_queries):
    ride = ride_with_jobs(rider=rider)
    job_id = enqueue("rides.match_ride", {"ride_id": ride.pk}).pk
    # token, the job, whether the rider may see the job's ride
    assert_flat(as_rider, f"/api/jobs/{job_id}", lambda n: None, 3, django_assert_max_num_queries)


def test_the_dead_letter_list(as_staff, django_assert_max_num_queries):
    def add(n):
        for _ in range(n):
            run_job(enqueue("tests.declined", {"n": 1}).pk)

    # token, count, the page with each letter's jobs and resolver
    assert_flat(as_staff, "/api/ops/dead-letters", add, 3, django_assert_max_num_queries)
    assert DeadLetter.objects.count() == 11


def test_the_queue_overview(as_staff, django_assert_max_num_queries):
    """A fixed number of index probes: a capped count per queue and live state, a lag per
    queue, the last hour's throughput, the open dead letters."""
    for rides in (1, 6):
        for _ in range(rides):
            ride_with_jobs()
        with django_assert_max_num_queries(16):
            assert as_staff.get("/api/ops/queues").status_code == 200


def test_a_payment_with_its_refunds(as_staff, django_assert_max_num_queries):
    payment = captured_payment_in()

    def add(n):
        for _ in range(n):
            refund = Refund.objects.create(payment=payment, amount=10, currency="usd")
            enqueue(
                "payments.refund_payment",
                {"refund_id": refund.pk},
                idempotency_key=f"refund:{refund.pk}",
            )

    # token, the payment, its events, its refunds, their jobs
    assert_flat(as_staff, f"/api/payments/{payment.pk}", add, 5, django_assert_max_num_queries)
    assert Payment.objects.get(pk=payment.pk).refunds.count() == 11
