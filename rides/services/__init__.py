"""Every write to accounts and rides. Rows are locked before deciding; jobs are enqueued inside
the same transaction, so a rollback leaves neither the change nor its jobs."""

from rides.services.accounts import account_register, account_token
from rides.services.drivers import (
    HEATMAP_CELL_DEGREES,
    driver_count,
    driver_ranking_refresh,
    driver_set_availability,
    driver_set_car,
    driver_update_location,
    heatmap_fold,
)
from rides.services.lifecycle import (
    ride_accept,
    ride_analytics_fold,
    ride_cancel,
    ride_complete,
    ride_expire,
    ride_expire_due,
    ride_match,
    ride_notice_arrivals,
    ride_record_analytics,
    ride_request,
    ride_set_payment_status,
    ride_set_receipt_status,
    ride_start,
)
from rides.services.pricing import (
    distance_km,
    fare_for,
    promo_expire,
    promo_of,
    promo_redeem,
    ride_money,
)

__all__ = [
    "HEATMAP_CELL_DEGREES",
    "account_register",
    "account_token",
    "distance_km",
    "driver_count",
    "driver_ranking_refresh",
    "driver_set_availability",
    "driver_set_car",
    "driver_update_location",
    "fare_for",
    "promo_of",
    "ride_money",
    "heatmap_fold",
    "promo_expire",
    "promo_redeem",
    "ride_accept",
    "ride_analytics_fold",
    "ride_cancel",
    "ride_complete",
    "ride_expire",
    "ride_expire_due",
    "ride_match",
    "ride_notice_arrivals",
    "ride_record_analytics",
    "ride_request",
    "ride_set_payment_status",
    "ride_set_receipt_status",
    "ride_start",
]
