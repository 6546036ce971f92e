"""Fares and distances."""

import math
from decimal import Decimal

from django.conf import settings


# --- fares and distances ------------------------------------------------------------------------
def distance_km(lat1: float, lng1: float, lat2: float, lng2: float) -> float:
    """Great-circle distance between two points."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lng2 - lng1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 6371.0 * 2 * math.asin(math.sqrt(a))


def fare_for(*, distance: Decimal | float, minutes: int) -> int:
    """Base + per km + per minute, in minor units."""
    per_km = Decimal(settings.FARE_PER_KM) * Decimal(str(distance))
    return int(settings.FARE_BASE + per_km.to_integral_value() + settings.FARE_PER_MIN * minutes)


def estimate(pickup: dict, dropoff: dict) -> int:
    """The fare of a ride's road distance (1.3 times the straight line) at 30 km/h."""
    road_km = distance_km(pickup["lat"], pickup["lng"], dropoff["lat"], dropoff["lng"]) * 1.3
    return fare_for(distance=round(road_km, 2), minutes=math.ceil(road_km / 30 * 60))
