"""Riders, drivers, rides and the audit trail of every ride transition, and promo codes."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Rider(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=120)
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return self.name


class Driver(models.Model):
    user = models.OneToOneField(settings.AUTH_USER_MODEL, on_delete=models.CASCADE)
    name = models.CharField(max_length=120)
    car = models.CharField(max_length=120, blank=True)  # what riders look for: "Blue Prius, B-X 1"
    available = models.BooleanField(default=False)
    lat = models.FloatField(null=True, blank=True)
    lng = models.FloatField(null=True, blank=True)
    location_at = models.DateTimeField(null=True, blank=True)
    # Refreshed by the ranking job; matching prefers higher scores among near drivers.
    rating = models.FloatField(default=5.0)
    acceptance_rate = models.FloatField(default=1.0)
    completion_rate = models.FloatField(default=1.0)
    rank_score = models.FloatField(default=1.0)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        indexes = [models.Index(fields=["available", "lat", "lng"], name="driver_available_idx")]

    def __str__(self) -> str:
        return self.name


class Ride(models.Model):
    class Status(models.TextChoices):
        REQUESTED = "requested"
        ACCEPTED = "accepted"
        IN_PROGRESS = "in_progress"
        COMPLETED = "completed"
        CANCELLED = "cancelled"

    class ReceiptStatus(models.TextChoices):
        NONE = "none"
        PENDING = "pending"
        SENT = "sent"
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        FAILED = "failed"

    rider = models.ForeignKey(Rider, on_delete=models.PROTECT, related_name="rides")
    driver = models.ForeignKey(
        Driver, null=True, blank=True, on_delete=models.PROTECT, related_name="rides"
    )
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.REQUESTED)
    pickup_lat = models.FloatField()
    pickup_lng = models.FloatField()
    dropoff_lat = models.FloatField()
    dropoff_lng = models.FloatField()
    requested_at = models.DateTimeField(auto_now_add=True)
    accepted_at = models.DateTimeField(null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    completed_at = models.DateTimeField(null=True, blank=True)
    cancelled_at = models.DateTimeField(null=True, blank=True)
    # When the accepted driver's position first came within ARRIVING_DISTANCE_KM of the pickup
    # (set by the every-minute sweep `ride_notice_arrivals`, which publishes it once).
    driver_arriving_at = models.DateTimeField(null=True, blank=True)
    cancel_reason = models.CharField(max_length=200, blank=True)
    distance_km = models.DecimalField(max_digits=7, decimal_places=2, null=True, blank=True)
    duration_min = models.PositiveIntegerField(null=True, blank=True)
    estimated_fare = models.PositiveIntegerField()  # minor units, authorised at request time
    fare_amount = models.PositiveIntegerField(null=True, blank=True)  # minor units, final
    currency = models.CharField(max_length=3)
    payment_status = models.CharField(max_length=20, default="none")
    # What the payments app recorded of the ride's payments (`rides.money.Charges` as a dict),
    # written by it through `ride_set_payment_status`; `rides.money` reads it.
    charges = models.JSONField(default=dict, blank=True, editable=False)
    receipt_status = models.CharField(
        max_length=20, choices=ReceiptStatus.choices, default=ReceiptStatus.NONE
    )
    # Completed and not yet counted in its day's totals (DailyRideStats): set by the completion,
    # cleared by the fold that counts it.
    analytics_pending = models.BooleanField(default=False, editable=False)

    class Meta:
        ordering = ["-requested_at", "-id"]
        indexes = [
            models.Index(fields=["status", "requested_at"], name="ride_status_idx"),
            models.Index(
                fields=["id"],
                name="ride_analytics_pending_idx",
                condition=Q(analytics_pending=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(pickup_lat__gte=-90, pickup_lat__lte=90)
                & Q(dropoff_lat__gte=-90, dropoff_lat__lte=90)
                & Q(pickup_lng__gte=-180, pickup_lng__lte=180)
                & Q(dropoff_lng__gte=-180, dropoff_lng__lte=180),
                name="ride_coordinates_in_range",
            ),
            models.CheckConstraint(
                condition=Q(status="requested") | Q(driver__isnull=False) | Q(status="cancelled"),
                name="ride_taken_has_driver",
            ),
        ]

    def __str__(self) -> str:
        return f"Ride {self.pk} ({self.status})"


class RideEvent(models.Model):
    """One transition of a ride: who moved it, when, from which status to which."""

    ride = models.ForeignKey(Ride, on_delete=models.CASCADE, related_name="events")
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    old = models.CharField(max_length=20, blank=True)
    new = models.CharField(max_length=20)
    note = models.CharField(max_length=200, blank=True)
    at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.old or '-'} → {self.new}"


class RideOffer(models.Model):
    """A requested ride put in front of a near, available driver by the matching job."""

    ride = models.ForeignKey(Ride, on_delete=models.CASCADE, related_name="offers")
    driver = models.ForeignKey(Driver, on_delete=models.CASCADE, related_name="offers")
    distance_km = models.FloatField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["ride", "driver"], name="ride_offer_once")]

    def __str__(self) -> str:
        return f"ride {self.ride_id} to driver {self.driver_id}"


class LocationPing(models.Model):
    """A driver's location ping not yet counted in the heatmap (the `bulk` queue folds them)."""

    lat = models.FloatField()
    lng = models.FloatField()
    at = models.DateTimeField()

    def __str__(self) -> str:
        return f"({self.lat}, {self.lng}) at {self.at:%Y-%m-%d %H:%M:%S}"


class HeatmapCell(models.Model):
    """Driver location pings per grid cell and hour, folded in by the `bulk` queue."""

    cell_lat = models.DecimalField(max_digits=6, decimal_places=2)
    cell_lng = models.DecimalField(max_digits=6, decimal_places=2)
    hour = models.DateTimeField()
    pings = models.PositiveIntegerField(default=0)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["cell_lat", "cell_lng", "hour"], name="heatmap_cell")
        ]

    def __str__(self) -> str:
        return f"({self.cell_lat}, {self.cell_lng}) at {self.hour:%Y-%m-%d %H}h: {self.pings}"


class DailyRideStats(models.Model):
    """Completed rides per day, kept by the every-minute fold of completed rides."""

    day = models.DateField(unique=True)
    rides_completed = models.PositiveIntegerField(default=0)
    revenue = models.PositiveBigIntegerField(default=0)  # minor units of FARE_CURRENCY
    distance_km = models.DecimalField(max_digits=12, decimal_places=2, default=0)

    def __str__(self) -> str:
        return f"{self.day}: {self.rides_completed} rides"


class PromoCode(models.Model):
    """A discount code a rider may give when requesting a ride."""

    class Kind(models.TextChoices):
        PERCENT = "percent"
        FIXED = "fixed"

    code = models.CharField(max_length=40, unique=True)  # stored upper case
    kind = models.CharField(max_length=10, choices=Kind.choices)
    value = models.PositiveIntegerField()  # percent 1..100, or minor units for `fixed`
    currency = models.CharField(max_length=3, default=settings.FARE_CURRENCY)
    expires_at = models.DateTimeField(null=True, blank=True)
    usage_limit = models.PositiveIntegerField(null=True, blank=True)  # null: unlimited
    times_used = models.PositiveIntegerField(default=0)
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "payments_promocode"  # its table from when payments kept promo codes
        ordering = ["code"]
        constraints = [
            models.CheckConstraint(condition=Q(value__gt=0), name="promo_value_positive"),
            models.CheckConstraint(
                condition=~Q(kind="percent") | Q(value__lte=100), name="promo_percent_max_100"
            ),
            models.CheckConstraint(
                condition=Q(usage_limit__isnull=True) | Q(times_used__lte=models.F("usage_limit")),
                name="promo_usage_within_limit",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class PromoRedemption(models.Model):
    """A promo code used on one ride."""

    promo = models.ForeignKey(PromoCode, on_delete=models.PROTECT, related_name="redemptions")
    ride = models.OneToOneField(Ride, on_delete=models.CASCADE, related_name="promo")
    rider = models.ForeignKey(Rider, on_delete=models.CASCADE, related_name="promos")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        db_table = "payments_promoredemption"

    def __str__(self) -> str:
        return f"{self.promo} on ride {self.ride_id}"
