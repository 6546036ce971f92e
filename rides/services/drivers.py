"""Drivers: availability, location, the heatmap of their pings and their ranking."""

from datetime import timedelta
from decimal import Decimal

from django.db import connection, transaction
from django.db.models import Count, Q
from django.utils import timezone

from rides.models import Driver, HeatmapCell, LocationPing, Ride

HEATMAP_CELL_DEGREES = Decimal("0.01")  # about 1 km


# --- drivers ------------------------------------------------------------------------------------
@transaction.atomic
def driver_set_availability(*, driver: Driver, available: bool) -> Driver:
    """Go on or off duty."""
    Driver.objects.filter(pk=driver.pk).update(available=available)
    driver.available = available
    return driver


def driver_set_car(*, driver: Driver, car: str) -> Driver:
    """Describe the driver's car as riders look for it ("Blue Prius, B-X 1")."""
    Driver.objects.filter(pk=driver.pk).update(car=car[:120])
    driver.car = car[:120]
    return driver


def driver_update_location(*, driver: Driver, lat: float, lng: float) -> None:
    """Store the driver's position and keep the ping for the heatmap: one statement, no job
    per ping (the `bulk` queue folds the kept pings in every minute)."""
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH moved AS (UPDATE {Driver._meta.db_table} SET lat = %s, lng = %s,"
            f" location_at = %s WHERE id = %s RETURNING lat, lng, location_at)"
            f" INSERT INTO {LocationPing._meta.db_table} (lat, lng, at)"
            f" SELECT lat, lng, location_at FROM moved",
            [lat, lng, timezone.now(), driver.pk],
        )


def heatmap_fold(*, chunk: int) -> int:
    """Count up to `chunk` kept location pings in their grid cell and hour, and delete them, in
    one statement: a ping is counted exactly once, also with two folds at a time. Returns how
    many were folded."""
    cell, ping, cells = (
        HEATMAP_CELL_DEGREES,
        LocationPing._meta.db_table,
        HeatmapCell._meta.db_table,
    )
    with connection.cursor() as cursor:
        cursor.execute(
            f"WITH taken AS (DELETE FROM {ping} WHERE id IN (SELECT id FROM {ping} ORDER BY id"
            f" LIMIT %s FOR UPDATE SKIP LOCKED) RETURNING lat, lng, at),"
            f" counted AS (INSERT INTO {cells} (cell_lat, cell_lng, hour, pings)"
            f" SELECT round(lat::numeric / %s) * %s, round(lng::numeric / %s) * %s,"
            f" date_trunc('hour', at), count(*) FROM taken GROUP BY 1, 2, 3"
            f" ON CONFLICT (cell_lat, cell_lng, hour)"
            f" DO UPDATE SET pings = {cells}.pings + EXCLUDED.pings)"
            f" SELECT count(*) FROM taken",
            [chunk, cell, cell, cell, cell],
        )
        return cursor.fetchone()[0]


# --- ranking ------------------------------------------------------------------------------------
def driver_ranking_refresh(*, after_id: int, chunk: int, window: timedelta) -> list[Driver]:
    """Recompute acceptance and completion rates and the rank score of the next `chunk`
    drivers with ids above `after_id`, over the last `window`. Returns the drivers done."""
    since = timezone.now() - window
    drivers = list(
        Driver.objects.filter(pk__gt=after_id)
        .order_by("pk")
        .annotate(
            offered=Count("offers", filter=Q(offers__created_at__gte=since), distinct=True),
            taken=Count("rides", filter=Q(rides__accepted_at__gte=since), distinct=True),
            completed=Count(
                "rides",
                filter=Q(rides__accepted_at__gte=since, rides__status=Ride.Status.COMPLETED),
                distinct=True,
            ),
        )[:chunk]
    )
    for d in drivers:
        d.acceptance_rate = min(1.0, d.taken / d.offered) if d.offered else 1.0
        d.completion_rate = d.completed / d.taken if d.taken else 1.0
        d.rank_score = round(
            d.rating / 5 * (0.5 + 0.25 * d.acceptance_rate + 0.25 * d.completion_rate), 4
        )
    Driver.objects.bulk_update(drivers, ["acceptance_rate", "completion_rate", "rank_score"])
    return drivers


def driver_count() -> int:
    return Driver.objects.count()
