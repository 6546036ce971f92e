"""Fares, distances and promo codes: what a ride costs the rider."""

import math
from decimal import Decimal

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bimride.errors import ValidationError
from rides import money
from rides.models import PromoCode, PromoRedemption, Ride


# --- fares and distances ------------------------------------------------------------------------
def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance between two points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def tariff() -> money.Tariff:
    return money.Tariff(
        base=settings.FARE_BASE, per_km=settings.FARE_PER_KM, per_min=settings.FARE_PER_MIN
    )


def fare_for(*, distance: Decimal | float, minutes: int) -> int:
    """Base + per km + per minute, in minor units."""
    return money.fare(tariff(), distance, minutes)


def estimate(pickup: dict, dropoff: dict) -> int:
    """The fare of a ride's road distance (1.3 times the straight line) at 30 km/h."""
    road_km = distance_km(pickup["lat"], pickup["lng"], dropoff["lat"], dropoff["lng"]) * 1.3
    return fare_for(distance=round(road_km, 2), minutes=math.ceil(road_km / 30 * 60))


# --- promo codes --------------------------------------------------------------------------------
def promo_redeem(*, code: str, ride: Ride) -> PromoRedemption:
    """Redeem `code` for a ride being requested (call inside the request's transaction); an
    unknown, expired or used-up code raises ValidationError on `promo_code`."""
    promo = PromoCode.objects.select_for_update().filter(code=code.strip().upper()).first()

    def refuse(message: str):
        return ValidationError(message, code="invalid_promo_code", fields={"promo_code": [message]})

    if promo is None or not promo.active:
        raise refuse("Unknown promo code.")
    if promo.expires_at is not None and promo.expires_at <= timezone.now():
        raise refuse("This promo code has expired.")
    if promo.usage_limit is not None and promo.times_used >= promo.usage_limit:
        raise refuse("This promo code has been used up.")
    if promo.kind == PromoCode.Kind.FIXED and promo.currency != ride.currency:
        raise refuse("This promo code is not valid in this currency.")
    promo.times_used += 1
    promo.save(update_fields=["times_used"])
    return PromoRedemption.objects.create(promo=promo, ride=ride, rider=ride.rider)


def promo_of(ride: Ride) -> money.Promo | None:
    """The promo redeemed on `ride` (`ride.promo`, select it with `promo__promo` for lists)."""
    try:
        promo = ride.promo.promo
    except PromoRedemption.DoesNotExist:
        return None
    return money.Promo(code=promo.code, kind=promo.kind, value=promo.value)


def ride_money(ride: Ride) -> money.Breakdown:
    """The ride's money breakdown (`rides.money`): fare, promo, total due and what was charged."""
    return money.breakdown(
        currency=ride.currency,
        estimated_fare=ride.estimated_fare,
        final_fare=ride.fare_amount,
        distance_km=ride.distance_km,
        duration_min=ride.duration_min,
        tariff=tariff(),
        promo=promo_of(ride),
        charges=money.Charges(**ride.charges),
    )


@transaction.atomic
def promo_expire() -> int:
    """Deactivate codes past their expiry; returns how many."""
    return PromoCode.objects.filter(active=True, expires_at__lte=timezone.now()).update(
        active=False
    )
