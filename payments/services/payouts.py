"""Weekly driver incentive payouts: one per driver and ISO week, each a Stripe transfer to the
driver's connected account, written first, transferred outside any transaction, then recorded."""

from datetime import date, datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F
from django.utils import timezone

from payments import stripe_client
from payments.models import Payout, StripeAccount
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


def account_for(*, driver: Driver) -> StripeAccount:
    """The driver's Stripe connected account, created once."""
    existing = StripeAccount.objects.filter(driver=driver).first()
    if existing is not None:
        return existing
    account = stripe_client.account_create(
        driver_id=driver.pk,
        email=driver.user.email,
        country=settings.STRIPE_CONNECT_COUNTRY,
        key=f"account:{driver.pk}",
    )
    try:
        with transaction.atomic():
            return StripeAccount.objects.create(driver=driver, account_id=account["id"])
    except IntegrityError:  # a racing job saved it first (same key: the same account)
        return StripeAccount.objects.get(driver=driver)


def _payout_due(*, driver_id: int, week: str) -> Payout | None:
    """The driver's payout row for `week`, written once when the week earned an incentive."""
    start, end = _week_bounds(week)
    with transaction.atomic():
        Driver.objects.select_for_update().get(pk=driver_id)  # one writer per driver
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


def payout_pay(*, driver_id: int, week: str) -> Payout | None:
    """Pay a driver's incentive for `week` once: one Payout row per driver and week, one Stripe
    transfer per row. The key is `payout:<payout id>`, so a re-run after a crash is answered
    with Stripe's stored transfer. A payout tried again after it failed (its dead letter retried)
    first looks for a transfer that went through after all (a timeout), else uses a new key:
    Stripe would replay the stored refusal under the old one."""
    payout = _payout_due(driver_id=driver_id, week=week)
    if payout is None or payout.status == Payout.Status.PAID:
        return payout
    account = account_for(driver=payout.driver)
    group = f"payouts:{week}"
    metadata = {"driver_id": driver_id, "week": week, "payout_id": payout.pk}
    transfer = None
    if payout.failures:
        transfer = stripe_client.transfer_find(
            destination=account.account_id, group=group, metadata=metadata
        )
    if transfer is None:
        transfer = stripe_client.transfer_create(
            amount=payout.amount,
            currency=payout.currency,
            destination=account.account_id,
            group=group,
            metadata=metadata,
            key=f"payout:{payout.pk}" + (f":{payout.failures}" if payout.failures else ""),
        )
    with transaction.atomic():
        payout = Payout.objects.select_for_update().get(pk=payout.pk)
        if payout.status != Payout.Status.PAID:
            payout.status, payout.paid_at = Payout.Status.PAID, timezone.now()
            payout.stripe_transfer_id, payout.failure_message = transfer["id"], ""
            payout.save()
    return payout


def payout_fail(*, driver_id: int, week: str, error: str) -> None:
    """Mark a driver's unpaid payout for `week` failed (its job is dead)."""
    Payout.objects.filter(driver_id=driver_id, week=week).exclude(status=Payout.Status.PAID).update(
        status=Payout.Status.FAILED, failure_message=error[:500], failures=F("failures") + 1
    )
