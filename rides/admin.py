from django.contrib import admin
from django.utils.html import format_html, format_html_join

from bimride.admin import AuditInline
from rides.models import (
    DailyRideStats,
    Driver,
    HeatmapCell,
    PromoCode,
    PromoRedemption,
    Ride,
    RideEvent,
    RideOffer,
    Rider,
)
from rides.services import ride_money

BREAKDOWN_ROWS = [
    ("estimated_fare", "Estimated fare"),
    ("fare", "Final fare"),
    ("discount", "Promo discount"),
    ("total_due", "Total due"),
    ("authorized", "Authorised"),
    ("captured", "Captured"),
    ("released", "Released"),
    ("extra_charged", "Charged as an extra"),
    ("waived", "Waived (below the minimum charge)"),
    ("cancellation_fee", "Cancellation fee"),
    ("charged", "Charged in all"),
    ("refunded", "Refunded"),
    ("net_paid", "Net paid"),
]


def money_table(ride: Ride) -> str:
    """The ride's money breakdown (`rides.money`) as the admin shows it, in minor units."""
    body = ride_money(ride).as_dict()
    rows = [(label, body[name]) for name, label in BREAKDOWN_ROWS]
    rows += [(f"  {line['label']}", line["amount"]) for line in body["fare_lines"]]
    promo = f" · promo {body['promo_code']}" if body["promo_code"] else ""
    settled = "settled" if body["settled"] else "not settled"
    return format_html(
        "<table><caption>{} (minor units) · {}{}</caption>{}</table>",
        body["currency"].upper(),
        settled,
        promo,
        format_html_join("", "<tr><td>{}</td><td>{}</td></tr>", rows),
    )


@admin.register(Rider)
class RiderAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "created_at"]
    search_fields = ["name", "user__email"]
    raw_id_fields = ["user"]


@admin.register(Driver)
class DriverAdmin(admin.ModelAdmin):
    list_display = ["id", "name", "user", "available", "rank_score", "location_at"]
    list_filter = ["available"]
    search_fields = ["name", "user__email"]
    raw_id_fields = ["user"]


class RideEventInline(AuditInline):
    model = RideEvent
    fields = ["at", "actor", "old", "new", "note"]


@admin.register(Ride)
class RideAdmin(admin.ModelAdmin):
    list_display = [
        "id", "status", "rider", "driver", "requested_at", "fare_amount", "currency",
        "payment_status", "receipt_status",
    ]  # fmt: skip
    list_filter = ["status", "payment_status", "receipt_status"]
    search_fields = ["id", "rider__user__email", "driver__user__email"]
    date_hierarchy = "requested_at"
    raw_id_fields = ["rider", "driver"]
    inlines = [RideEventInline]
    readonly_fields = ["requested_at", "money"]

    @admin.display(description="money")
    def money(self, ride: Ride) -> str:
        return money_table(ride)


@admin.register(RideOffer)
class RideOfferAdmin(admin.ModelAdmin):
    list_display = ["ride", "driver", "distance_km", "created_at"]
    raw_id_fields = ["ride", "driver"]


@admin.register(HeatmapCell)
class HeatmapCellAdmin(admin.ModelAdmin):
    list_display = ["cell_lat", "cell_lng", "hour", "pings"]
    date_hierarchy = "hour"


@admin.register(DailyRideStats)
class DailyRideStatsAdmin(admin.ModelAdmin):
    list_display = ["day", "rides_completed", "revenue", "distance_km"]


@admin.register(PromoCode)
class PromoCodeAdmin(admin.ModelAdmin):
    list_display = ["code", "kind", "value", "currency", "expires_at", "times_used", "usage_limit"]
    list_filter = ["kind", "active"]
    search_fields = ["code"]
    readonly_fields = ["times_used"]


@admin.register(PromoRedemption)
class PromoRedemptionAdmin(admin.ModelAdmin):
    list_display = ["promo", "ride", "rider", "created_at"]
    raw_id_fields = ["promo", "ride", "rider"]
