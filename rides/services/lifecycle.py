"""Rides from request to completion or cancellation, matching, and the columns other apps
follow (payment and receipt status)."""

import math
from decimal import Decimal

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connection, transaction
from django.db.models import F
from django.db.models.functions import Greatest
from django.utils import timezone

from bimride.errors import (
    Conflict,
    InvalidTransition,
    NotFound,
    PermissionDenied,
)
from bimride.jobs import publish
from rides.events import (
    RideAccepted,
    RideCancelled,
    RideCompleted,
    RideDriverArriving,
    RideOffered,
    RideRequested,
    RideStarted,
)
from rides.models import (
    DailyRideStats,
    Driver,
    Ride,
    RideEvent,
    RideOffer,
    Rider,
)
from rides.services import pricing

User = get_user_model()


# --- rides --------------------------------------------------------------------------------------
def _move(ride: Ride, new: str, actor: User | None, fields: list[str], note: str = "") -> None:
    """Record the transition of a locked ride to `new`, saving the status and the `fields` the
    caller set."""
    old = ride.status
    ride.status = new
    ride.save(update_fields=["status", *fields])
    RideEvent.objects.create(ride=ride, actor=actor, old=old, new=new, note=note)


def _locked(ride_id: int) -> Ride:
    """The ride, locked, with its rider and driver (which the answer shows) read alongside."""
    rides = Ride.objects.select_for_update(of=("self",)).select_related("rider", "driver")
    try:
        return rides.get(pk=ride_id)  # get(): no ORDER BY to build
    except Ride.DoesNotExist:
        raise NotFound("No such ride.") from None


@transaction.atomic
def ride_request(
    *, rider: Rider, pickup: dict, dropoff: dict, promo_code: str | None = None
) -> Ride:
    """Request a ride; matching and payment authorisation follow as jobs, and the every-minute
    sweep cancels it if no driver accepts it within RIDE_EXPIRY.
    A promo code is redeemed now (an unusable one is a 400 and nothing is written)."""
    user = rider.user  # read with the request's token
    # Locked, so that of racing requests (two devices, two keys) one sees the other's ride.
    rider = Rider.objects.select_for_update().get(pk=rider.pk)
    if Ride.objects.filter(
        rider=rider, status__in=[Ride.Status.REQUESTED, Ride.Status.ACCEPTED, "in_progress"]
    ).exists():
        raise Conflict("You already have a ride under way.", code="ride_in_progress")
    ride = Ride.objects.create(
        rider=rider,
        pickup_lat=pickup["lat"],
        pickup_lng=pickup["lng"],
        dropoff_lat=dropoff["lat"],
        dropoff_lng=dropoff["lng"],
        estimated_fare=pricing.estimate(pickup, dropoff),
        currency=settings.FARE_CURRENCY,
    )
    RideEvent.objects.create(ride=ride, actor=user, new=ride.status)
    if promo_code:
        pricing.promo_redeem(code=promo_code, ride=ride)
    publish(RideRequested(ride_id=ride.pk))  # unaccepted, it expires: `ride_expire_due`
    return ride


@transaction.atomic
def ride_accept(*, ride_id: int, driver: Driver) -> Ride:
    """Give a requested ride to an available driver. Of racing drivers exactly one wins."""
    user = driver.user  # read with the request's token
    # The ride before the driver, the order in which matching's offers (which reference both)
    # lock them: in the other order an accept and a matching of the same ride deadlock.
    ride = _locked(ride_id)
    driver = Driver.objects.select_for_update().get(pk=driver.pk)
    if ride.status != Ride.Status.REQUESTED:
        _check_visible(ride, driver)
        raise InvalidTransition(ride.status, Ride.Status.ACCEPTED)
    if not driver.available:
        raise Conflict("Set yourself available before accepting rides.", code="driver_unavailable")
    if driver.rides.filter(status__in=[Ride.Status.ACCEPTED, Ride.Status.IN_PROGRESS]).exists():
        raise Conflict("Finish your current ride first.", code="driver_busy")
    ride.driver, ride.accepted_at = driver, timezone.now()
    _move(ride, Ride.Status.ACCEPTED, user, ["driver", "accepted_at"])
    publish(RideAccepted(ride_id=ride.pk, driver_id=driver.pk))
    return ride


def _own_ride(ride_id: int, driver: Driver) -> Ride:
    """The ride, locked, if `driver` drives it; NotFound if they cannot see it (they were not
    offered it either), PermissionDenied if they can."""
    ride = _locked(ride_id)
    if ride.driver_id != driver.pk:
        _check_visible(ride, driver)
        raise PermissionDenied("Only the ride's driver can do this.")
    return ride


def _check_visible(ride: Ride, driver: Driver) -> None:
    """NotFound unless `driver` drives `ride` or was offered it (others' rides do not exist), as
    `selectors.ride_list_for` shows rides; asked only on the error paths, after the lock."""
    if ride.driver_id != driver.pk and not ride.offers.filter(driver=driver).exists():
        raise NotFound("No such ride.")


@transaction.atomic
def ride_start(*, ride_id: int, driver: Driver) -> Ride:
    """The driver picked the rider up."""
    ride = _own_ride(ride_id, driver)
    if ride.status != Ride.Status.ACCEPTED:
        raise InvalidTransition(ride.status, Ride.Status.IN_PROGRESS)
    ride.started_at = timezone.now()
    _move(ride, Ride.Status.IN_PROGRESS, driver.user, ["started_at"])
    publish(RideStarted(ride_id=ride.pk))
    return ride


@transaction.atomic
def ride_complete(*, ride_id: int, driver: Driver, distance_km: Decimal, duration_min: int) -> Ride:
    """Finish the ride and set its fare; capture and receipt follow as jobs, and the
    every-minute fold counts it in its day's totals."""
    ride = _own_ride(ride_id, driver)
    if ride.status != Ride.Status.IN_PROGRESS:
        raise InvalidTransition(ride.status, Ride.Status.COMPLETED)
    ride.completed_at = timezone.now()
    ride.distance_km, ride.duration_min = distance_km, duration_min
    ride.fare_amount = pricing.fare_for(distance=distance_km, minutes=duration_min)
    ride.analytics_pending = True  # counted in its day's totals by `ride_analytics_fold`
    ride.receipt_status = Ride.ReceiptStatus.PENDING  # owed from now on; notifications moves it
    completed = ["completed_at", "distance_km", "duration_min", "fare_amount", "analytics_pending"]
    _move(ride, Ride.Status.COMPLETED, driver.user, [*completed, "receipt_status"])
    publish(RideCompleted(ride_id=ride.pk))
    return ride


def _cancel(ride: Ride, actor: User | None, cancelled_by: str, reason: str) -> Ride:
    if ride.status not in (Ride.Status.REQUESTED, Ride.Status.ACCEPTED):
        raise InvalidTransition(ride.status, Ride.Status.CANCELLED)
    accepted_at = ride.accepted_at
    ride.cancelled_at, ride.cancel_reason = timezone.now(), reason
    _move(ride, Ride.Status.CANCELLED, actor, ["cancelled_at", "cancel_reason"], note=reason)
    publish(
        RideCancelled(
            ride_id=ride.pk,
            cancelled_by=cancelled_by,
            after_accept_seconds=(
                int((ride.cancelled_at - accepted_at).total_seconds()) if accepted_at else None
            ),
        )
    )
    return ride


@transaction.atomic
def ride_cancel(*, ride_id: int, user: User, reason: str = "") -> Ride:
    """Cancel a ride before pickup, by its rider or its driver."""
    ride = _locked(ride_id)
    if ride.rider.user_id == user.pk:
        cancelled_by = "rider"
    elif ride.driver_id and ride.driver.user_id == user.pk:
        cancelled_by = "driver"
    else:
        raise PermissionDenied("Only the ride's rider or driver can cancel it.")
    return _cancel(ride, user, cancelled_by, reason)


@transaction.atomic
def ride_expire(*, ride_id: int) -> Ride | None:
    """Cancel a ride that no driver accepted in time; a no-op for any other ride. (Rides
    requested before the sweep `ride_expire_due` each had a deferred job calling this.)"""
    ride = _locked(ride_id)
    if ride.status != Ride.Status.REQUESTED:
        return None
    if timezone.now() < ride.requested_at + settings.RIDE_EXPIRY:
        return None
    return _cancel(ride, None, "system", "expired")


@transaction.atomic
def ride_expire_due(*, after_id: int, chunk: int) -> list[int]:
    """Cancel, as expired, up to `chunk` rides with ids above `after_id` still requested
    RIDE_EXPIRY after their request, locked and in id order; return the ids of those cancelled.
    A ride locked meanwhile (being accepted) is skipped: the next sweep sees it again, still
    requested or not. Each expiry is a cancellation by the system, published as such."""
    # NO KEY UPDATE: not held up by the offers matching inserts (their key share of the ride),
    # but by an accept, a cancellation or a payment's update of the same ride.
    due = (
        Ride.objects.select_for_update(skip_locked=True, no_key=True, of=("self",))
        .select_related("rider", "driver")
        .filter(
            pk__gt=after_id,
            status=Ride.Status.REQUESTED,
            requested_at__lte=timezone.now() - settings.RIDE_EXPIRY,
        )
        .order_by("pk")[:chunk]
    )
    expired = []
    for ride in due:
        _cancel(ride, None, "system", "expired")
        expired.append(ride.pk)
    return expired


@transaction.atomic
def ride_match(*, ride_id: int) -> list[RideOffer]:
    """Offer a requested ride to the nearest available drivers (idempotent)."""
    ride = Ride.objects.get(pk=ride_id)
    if ride.status != Ride.Status.REQUESTED:
        return []
    box = 0.5  # degrees, about 50 km: matching never scans every driver
    # Ranked in the database by distance / rank score, the distance as the flat-earth
    # approximation (exact enough within the box), squared: only the chosen drivers are read.
    north, east = (
        F("lat") - ride.pickup_lat,
        (F("lng") - ride.pickup_lng) * math.cos(math.radians(ride.pickup_lat)),
    )
    score = Greatest(F("rank_score"), 0.1)
    ranked = (
        Driver.objects.filter(
            available=True,
            lat__range=(ride.pickup_lat - box, ride.pickup_lat + box),
            lng__range=(ride.pickup_lng - box, ride.pickup_lng + box),
        )
        .exclude(rides__status__in=[Ride.Status.ACCEPTED, Ride.Status.IN_PROGRESS])
        .alias(rank=(north * north + east * east) / (score * score))
        .order_by("rank", "pk")[: settings.MATCH_DRIVERS]
    )
    offers = [
        RideOffer(
            ride=ride,
            driver=d,
            distance_km=pricing.distance_km(ride.pickup_lat, ride.pickup_lng, d.lat, d.lng),
        )
        for d in ranked
    ]
    RideOffer.objects.bulk_create(offers, ignore_conflicts=True)
    for offer in offers:
        # A re-run of matching publishes again: the subscribers key their work by ride and
        # driver, so each driver still hears of the ride once.
        publish(RideOffered(ride_id=ride.pk, driver_id=offer.driver_id))
    return offers


def ride_record_analytics(*, ride_id: int) -> dict:
    """Add a completed ride to its day's totals. Call from a job that commits with its effect.
    (Rides completed before `ride_analytics_fold` each had a job calling this.)"""
    ride = Ride.objects.get(pk=ride_id, status=Ride.Status.COMPLETED)
    day = timezone.localdate(ride.completed_at)
    stats, _ = DailyRideStats.objects.get_or_create(day=day)
    DailyRideStats.objects.filter(pk=stats.pk).update(
        rides_completed=F("rides_completed") + 1,
        revenue=F("revenue") + ride.fare_amount,
        distance_km=F("distance_km") + ride.distance_km,
    )
    return {"day": day.isoformat()}


def ride_analytics_fold(*, chunk: int) -> int:
    """Count up to `chunk` completed rides not yet counted in their day's totals and mark them
    counted, in one statement: a ride is counted exactly once, also with two folds at a time
    (a ride locked meanwhile is left for the next). Returns how many were counted."""
    rides, stats = Ride._meta.db_table, DailyRideStats._meta.db_table
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH taken AS (UPDATE {rides} SET analytics_pending = false WHERE id IN"
            f" (SELECT id FROM {rides} WHERE analytics_pending ORDER BY id LIMIT %s"
            f" FOR UPDATE SKIP LOCKED) RETURNING completed_at, fare_amount, distance_km),"
            f" counted AS (INSERT INTO {stats} (day, rides_completed, revenue, distance_km)"
            f" SELECT (completed_at AT TIME ZONE %s)::date, count(*), sum(fare_amount),"
            f" sum(distance_km) FROM taken GROUP BY 1"
            f" ON CONFLICT (day) DO UPDATE SET"
            f" rides_completed = {stats}.rides_completed + EXCLUDED.rides_completed,"
            f" revenue = {stats}.revenue + EXCLUDED.revenue,"
            f" distance_km = {stats}.distance_km + EXCLUDED.distance_km)"
            f" SELECT count(*) FROM taken",
            [chunk, settings.TIME_ZONE],
        )
        return cursor.fetchone()[0]


@transaction.atomic
def ride_notice_arrivals(*, within_km: float) -> list[int]:
    """Mark the accepted rides whose driver's last position (sent since the acceptance) is
    within `within_km` of the pickup as arriving, and publish "ride.driver_arriving" for each,
    once per ride: one statement over the accepted rides, none per location ping."""
    rides, drivers = Ride._meta.db_table, Driver._meta.db_table
    with connection.cursor() as cursor:
        # The flat-earth distance: exact enough at these few hundred metres.
        # A ride locked meanwhile (being started or cancelled) is skipped: if it is still
        # accepted, the next sweep sees it again.
        cursor.execute(
            f"UPDATE {rides} SET driver_arriving_at = %s WHERE id IN (SELECT r.id FROM {rides} r"
            f" JOIN {drivers} d ON d.id = r.driver_id WHERE r.status = %s"
            f" AND r.driver_arriving_at IS NULL AND d.location_at >= r.accepted_at"
            f" AND sqrt(power(d.lat - r.pickup_lat, 2) + power((d.lng - r.pickup_lng)"
            f" * cos(radians(r.pickup_lat)), 2)) * 111.195 <= %s"
            f" FOR NO KEY UPDATE OF r SKIP LOCKED) RETURNING id",
            [timezone.now(), Ride.Status.ACCEPTED, within_km],
        )
        arriving = sorted(row[0] for row in cursor.fetchall())
    for ride_id in arriving:
        publish(RideDriverArriving(ride_id=ride_id))
    return arriving


# --- columns that follow other apps --------------------------------------------------------------
def ride_set_receipt_status(*, ride_id: int, status: str) -> None:
    """Move the ride's receipt status (set by the notifications app)."""
    Ride.objects.filter(pk=ride_id).update(receipt_status=status)


def ride_set_payment_status(
    *, ride_id: int, status: str = "", charges: dict | None = None, note: str = ""
) -> None:
    """Record the ride's payment status and charges (`rides.money.Charges` as a dict), as the
    payments app sees them; a `note` (a failed or disputed payment) flags the ride with an event
    on its audit trail. An empty status or no charges leaves that column as it is."""
    fields = {"payment_status": status} if status else {}
    if charges is not None:
        fields["charges"] = charges
    if fields:
        Ride.objects.filter(pk=ride_id).update(**fields)
    if note:
        ride_status = Ride.objects.values_list("status", flat=True).get(pk=ride_id)
        RideEvent.objects.create(ride_id=ride_id, old=ride_status, new=ride_status, note=note[:200])
