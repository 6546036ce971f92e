from django.contrib import admin

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
    readonly_fields = ["requested_at"]


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
