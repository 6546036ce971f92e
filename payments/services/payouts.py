"""Weekly driver incentive payouts: one per driver and ISO week."""

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from payments.models import (
    Payout,
)
from rides.models import Driver, Ride


# --- driver incentive payouts -------------------------------------------------------------------
def _week_bounds(week: str) -> tuple[datetime, datetime]:
    year, number = week.split("-W")
    monday = date.fromisocalendar(int(year), int(number), 1)
    start = timezone.make_aware(datetime.combine(monday, datetime.min.time()))
    return start, start + timedelta(days=7)


def payout_week_of(moment=None) -> str:
    """The ISO week before `moment` (default now): the week a Monday batch pays."""
    year, week, _ = (timezone.localdate(moment) - timedelta(days=7)).isocalendar()
    return f"{year}-W{week:02d}"


def payout_drivers(*, week: str, after_id: int, chunk: int) -> list[int]:
    """Ids (above `after_id`) of drivers with completed rides in `week`, `chunk` at a time."""
    start, end = _week_bounds(week)
    return list(
        Driver.objects.filter(
            pk__gt=after_id,
            rides__status=Ride.Status.COMPLETED,
            rides__completed_at__gte=start,
            rides__completed_at__lt=end,
        )
        .distinct()
        .order_by("pk")
        .values_list("pk", flat=True)[:chunk]
    )


@transaction.atomic
def payout_pay(*, driver_id: int, week: str) -> Payout | None:
    """Pay a driver's incentive for `week` once: one Payout row per driver and week."""
    start, end = _week_bounds(week)
    existing = Payout.objects.filter(driver_id=driver_id, week=week).first()
    if existing is not None:
        return existing
    rides = Ride.objects.filter(
        driver_id=driver_id,
        status=Ride.Status.COMPLETED,
        completed_at__gte=start,
        completed_at__lt=end,
    ).count()
    if rides < settings.PAYOUT_MIN_RIDES or settings.PAYOUT_PER_RIDE <= 0:
        return None
    return Payout.objects.create(
        driver_id=driver_id,
        week=week,
        rides=rides,
        amount=rides * settings.PAYOUT_PER_RIDE,
        currency=settings.FARE_CURRENCY,
    )
