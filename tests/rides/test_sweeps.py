"""The every-minute sweeps that stand in for a job per ride: expiring rides no driver accepted,
and counting completed rides in their day's totals."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.utils import timezone

from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.runner import run_job
from bimride.jobs.models import Job
from rides import services
from rides.models import DailyRideStats, Ride
from rides.tasks import expire_rides, fold_ride_analytics
from tests.rides.conftest import make_ride

pytestmark = pytest.mark.django_db


def requested_ago(seconds: float, **kw) -> Ride:
    ride = make_ride("requested", **kw)
    Ride.objects.filter(pk=ride.pk).update(requested_at=timezone.now() - timedelta(seconds=seconds))
    return ride


def cancelled_jobs(ride: Ride) -> set[str]:
    return set(Job.objects.filter(subject=f"ride:{ride.pk}").values_list("name", flat=True))


# --- expiry ---------------------------------------------------------------------------------------
def test_the_sweep_expires_requested_rides_past_the_expiry_and_no_others(settings):
    settings.RIDE_EXPIRY = timedelta(minutes=5)
    due = [requested_ago(301), requested_ago(900)]
    fresh = requested_ago(290)
    accepted = make_ride("accepted")
    Ride.objects.filter(pk=accepted.pk).update(requested_at=timezone.now() - timedelta(hours=1))

    assert services.ride_expire_due(after_id=0, chunk=10) == [r.pk for r in due]

    for ride in due:
        ride.refresh_from_db()
        assert (ride.status, ride.cancel_reason) == ("cancelled", "expired")
        assert list(ride.events.values_list("old", "new", "actor")) == [
            ("requested", "cancelled", None)
        ]
        # Released and told, as any cancellation by the system.
        assert cancelled_jobs(ride) == {
            "payments.release_authorization",
            "notifications.send_ride_cancelled",
            "notifications.push_ride_cancelled",  # tells the driver only of a rider's cancel
        }
    assert Ride.objects.get(pk=fresh.pk).status == "requested"
    assert Ride.objects.get(pk=accepted.pk).status == "accepted"
    assert cancelled_jobs(accepted) == set()


def test_a_second_sweep_changes_nothing(settings):
    settings.RIDE_EXPIRY = timedelta(minutes=5)
    ride = requested_ago(400)
    assert expire_rides({}, None) == {"expired": 1}
    events = list(Ride.objects.get(pk=ride.pk).events.values_list("id", flat=True))
    jobs = Job.objects.count()

    assert expire_rides({}, None) == {"expired": 0}

    assert list(Ride.objects.get(pk=ride.pk).events.values_list("id", flat=True)) == events
    assert Job.objects.count() == jobs


def test_the_sweep_goes_through_every_due_ride_a_chunk_at_a_time(settings, monkeypatch):
    settings.RIDE_EXPIRY = timedelta(minutes=5)
    monkeypatch.setattr("rides.tasks.EXPIRY_CHUNK", 2)
    rides = [requested_ago(400) for _ in range(5)]

    assert expire_rides({}, None) == {"expired": 5}

    assert set(
        Ride.objects.filter(pk__in=[r.pk for r in rides]).values_list("status", flat=True)
    ) == {"cancelled"}


def test_a_ride_past_expiry_that_a_driver_accepted_first_is_never_expired(settings, driver):
    settings.RIDE_EXPIRY = timedelta(minutes=5)
    driver.available = True
    driver.save()
    ride = requested_ago(400)
    services.ride_accept(ride_id=ride.pk, driver=driver)

    assert services.ride_expire_due(after_id=0, chunk=10) == []
    assert Ride.objects.get(pk=ride.pk).status == "accepted"


def test_the_sweep_runs_as_a_scheduled_job(settings):
    settings.RIDE_EXPIRY = timedelta(minutes=5)
    ride = requested_ago(400)
    job = enqueue("rides.expire_rides")
    run_job(job.pk)
    job.refresh_from_db()
    assert (job.state, job.result) == ("succeeded", {"expired": 1})
    assert Ride.objects.get(pk=ride.pk).status == "cancelled"


# --- analytics ------------------------------------------------------------------------------------
def completed(at=None) -> Ride:
    ride = make_ride("completed")
    Ride.objects.filter(pk=ride.pk).update(
        analytics_pending=True, completed_at=at or ride.completed_at
    )
    return ride


def test_the_fold_counts_each_completed_ride_once_in_its_day():
    yesterday = timezone.now() - timedelta(days=1)
    rides = [completed(), completed(), completed(at=yesterday)]
    make_ride("in_progress")

    assert fold_ride_analytics({}, None) == {"folded": 3}
    assert fold_ride_analytics({}, None) == {"folded": 0}

    totals = {
        s.day: (s.rides_completed, s.revenue, s.distance_km) for s in DailyRideStats.objects.all()
    }
    assert totals == {
        timezone.localdate(): (2, 2 * 1174, Decimal("8.40")),
        timezone.localdate(yesterday): (1, 1174, Decimal("4.20")),
    }
    assert not Ride.objects.filter(pk__in=[r.pk for r in rides], analytics_pending=True).exists()


def test_the_fold_adds_to_a_day_already_counted(monkeypatch):
    DailyRideStats.objects.create(
        day=timezone.localdate(), rides_completed=4, revenue=1000, distance_km=Decimal("1.00")
    )
    monkeypatch.setattr("rides.tasks.FOLD_CHUNK", 2)
    for _ in range(3):
        completed()

    assert fold_ride_analytics({}, None) == {"folded": 3}

    stats = DailyRideStats.objects.get()
    assert (stats.rides_completed, stats.revenue) == (7, 1000 + 3 * 1174)


def test_completing_a_ride_leaves_it_to_the_fold(driver):
    ride = make_ride("in_progress", driver=driver)
    services.ride_complete(
        ride_id=ride.pk, driver=driver, distance_km=Decimal("4.20"), duration_min=14
    )
    assert Ride.objects.get(pk=ride.pk).analytics_pending
    assert services.ride_analytics_fold(chunk=10) == 1
    assert DailyRideStats.objects.get().rides_completed == 1


# --- drivers arriving -----------------------------------------------------------------------------
def ping(driver, lat: float, lng: float, ago: float = 0) -> None:
    services.driver_update_location(driver=driver, lat=lat, lng=lng)
    driver.__class__.objects.filter(pk=driver.pk).update(
        location_at=timezone.now() - timedelta(seconds=ago)
    )


def arriving_events() -> list[dict]:
    jobs = Job.objects.filter(name="notifications.push_driver_arriving").order_by("pk")
    return [job.payload for job in jobs]


def test_the_sweep_marks_each_ride_whose_driver_pinged_near_the_pickup_once(settings):
    settings.ARRIVING_DISTANCE_KM = 1.0
    near, far, stale = make_ride("accepted"), make_ride("accepted"), make_ride("accepted")
    started = make_ride("in_progress")
    ping(near.driver, 52.5285, 13.405)  # 0.95 km north of the pickup
    ping(far.driver, 52.53, 13.405)  # 1.1 km
    ping(stale.driver, 52.5201, 13.405, ago=600)  # near, but sent before the acceptance
    Ride.objects.filter(pk=stale.pk).update(accepted_at=timezone.now() - timedelta(seconds=60))
    ping(started.driver, 52.5201, 13.405)

    assert services.ride_notice_arrivals(within_km=1.0) == [near.pk]
    assert Ride.objects.get(pk=near.pk).driver_arriving_at is not None
    assert arriving_events() == [{"ride_id": near.pk}]
    assert services.ride_notice_arrivals(within_km=1.0) == []  # once per ride
    ping(far.driver, 52.5205, 13.405)  # it came closer
    job = enqueue("rides.notice_driver_arrivals")  # what the every-minute schedule runs
    run_job(job.pk)
    assert Job.objects.get(pk=job.pk).result == {"arriving": [far.pk]}
    assert arriving_events() == [{"ride_id": near.pk}, {"ride_id": far.pk}]


def test_accepting_starting_and_matching_a_ride_publish_their_events(driver):
    ride = make_ride("requested")
    services.ride_match(ride_id=ride.pk)
    offered = Job.objects.filter(name="notifications.push_ride_offer")
    assert [j.payload for j in offered] == [{"ride_id": ride.pk, "driver_id": driver.pk}]
    services.ride_accept(ride_id=ride.pk, driver=driver)
    services.ride_start(ride_id=ride.pk, driver=driver)
    names = set(Job.objects.values_list("name", flat=True))
    assert {"notifications.push_driver_assigned", "notifications.push_ride_started"} <= names
