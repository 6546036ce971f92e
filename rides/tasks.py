"""Ride jobs: matching and the expiry and arrival sweeps on `critical`; the folds of location
pings and of completed rides (heatmap, analytics), ranking and promo codes on `bulk`."""

from datetime import timedelta

from django.conf import settings
from django.db import transaction
from rest_framework import serializers

from bimride.jobs import JobContext, job, schedule
from rides import services
from rides.events import RideRequested


class RidePayload(serializers.Serializer):
    ride_id = serializers.IntegerField(min_value=1)


@job(
    "rides.match_ride",
    queue="critical",
    timeout=30,
    on=RideRequested,
    subject="ride",
)
def match_ride(payload: dict, ctx: JobContext) -> dict:
    """Offer the requested ride to the nearest available drivers."""
    offers = services.ride_match(ride_id=payload["ride_id"])
    return {"offered_to": [offer.driver_id for offer in offers]}


# Rides requested before the every-minute sweep each had this job, deferred by RIDE_EXPIRY; it
# stays for those still queued (and their dead letters). New rides are the sweep's.
@job("rides.expire_ride", queue="critical", payload=RidePayload, timeout=30, subject="ride")
def expire_ride(payload: dict, ctx: JobContext) -> dict:
    """Cancel the ride if no driver accepted it in time (deferred by RIDE_EXPIRY)."""
    return {"expired": services.ride_expire(ride_id=payload["ride_id"]) is not None}


@job("rides.notice_driver_arrivals", queue="critical", timeout=30)
def notice_driver_arrivals(payload: dict, ctx: JobContext) -> dict:
    """Publish "ride.driver_arriving" once for each accepted ride whose driver came within
    ARRIVING_DISTANCE_KM of the pickup (from the drivers' last location pings)."""
    arriving = services.ride_notice_arrivals(within_km=settings.ARRIVING_DISTANCE_KM)
    return {"arriving": arriving}


EXPIRY_CHUNK = 200


@job("rides.expire_rides", queue="critical", timeout=60, atomic=False)
def expire_rides(payload: dict, ctx: JobContext) -> dict:
    """Cancel every ride still requested RIDE_EXPIRY after its request, a chunk of rides per
    transaction in id order: an interrupted sweep keeps what it did, and the next finishes."""
    expired, after_id = 0, 0
    while cancelled := services.ride_expire_due(after_id=after_id, chunk=EXPIRY_CHUNK):
        expired, after_id = expired + len(cancelled), cancelled[-1]
    return {"expired": expired}


FOLD_CHUNK = 10_000


def _fold_in_chunks(fold) -> dict:
    """Run `fold(chunk=FOLD_CHUNK)` until a chunk comes back short: each chunk commits on its
    own, so an interrupted fold leaves the rest for the next one."""
    total, folded = 0, FOLD_CHUNK
    while folded == FOLD_CHUNK:
        folded = fold(chunk=FOLD_CHUNK)
        total += folded
    return {"folded": total}


@job("rides.fold_location_pings", queue="bulk", timeout=300, atomic=False)
def fold_location_pings(payload: dict, ctx: JobContext) -> dict:
    """Count the drivers' location pings in the heatmap, a chunk per statement."""
    return _fold_in_chunks(services.heatmap_fold)


@job("rides.fold_ride_analytics", queue="bulk", timeout=300, atomic=False)
def fold_ride_analytics(payload: dict, ctx: JobContext) -> dict:
    """Count the completed rides in their day's totals, a chunk per statement."""
    return _fold_in_chunks(services.ride_analytics_fold)


# Rides completed before the every-minute fold each had this job (subscribed to
# "ride.completed"); it stays for those still queued (and their dead letters).
@job(
    "rides.record_ride_analytics",
    queue="bulk",
    payload=RidePayload,
    timeout=30,
    subject="ride",
)
def record_ride_analytics(payload: dict, ctx: JobContext) -> dict:
    """Add a completed ride to the day's totals (exactly once: it commits with the job)."""
    return services.ride_record_analytics(ride_id=payload["ride_id"])


RANKING_CHUNK = 200
RANKING_WINDOW = timedelta(days=30)


@job("rides.refresh_driver_ranking", queue="bulk", timeout=300, atomic=False)
def refresh_driver_ranking(payload: dict, ctx: JobContext) -> dict:
    """Recompute every driver's rates and rank score in chunks. Each chunk commits with its
    progress, so a re-run after a crash resumes after the last finished chunk."""
    cursor = (ctx.progress or {}).get("cursor", 0)
    done = (ctx.progress or {}).get("done", 0)
    total = services.driver_count()
    while True:
        with transaction.atomic():
            drivers = services.driver_ranking_refresh(
                after_id=cursor, chunk=RANKING_CHUNK, window=RANKING_WINDOW
            )
            if not drivers:
                break
            cursor, done = drivers[-1].pk, done + len(drivers)
            ctx.report(done=done, total=total, cursor=cursor)
    return {"drivers": done}


# Named when payments kept promo codes; job names are never renamed.
@job("payments.expire_promo_codes", queue="bulk", timeout=60)
def expire_promo_codes(payload: dict, ctx: JobContext) -> dict:
    """Deactivate promo codes past their expiry date."""
    return {"expired": services.promo_expire()}


schedule("rides.expire_rides", "* * * * *")  # every minute
schedule("rides.fold_location_pings", "* * * * *")  # every minute
schedule("rides.notice_driver_arrivals", "* * * * *")  # every minute
schedule("rides.fold_ride_analytics", "* * * * *")  # every minute
schedule("rides.refresh_driver_ranking", "0 * * * *")  # hourly
schedule("payments.expire_promo_codes", "0 0 * * *")  # daily at midnight
