"""Payments (Stripe PaymentIntents) and their audit trail, refunds, Stripe customers, webhook
events and driver incentive payouts. Money is integer minor units plus a currency."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class StripeCustomer(models.Model):
    """A rider's Stripe customer and saved payment method: ids only, never card data."""

    rider = models.OneToOneField("rides.Rider", on_delete=models.PROTECT, related_name="stripe")
    customer_id = models.CharField(max_length=255, unique=True)
    payment_method_id = models.CharField(max_length=255)
    card_last4 = models.CharField(max_length=4, blank=True)  # shown on receipts; not card data
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.customer_id


class StripeAccount(models.Model):
    """A driver's Stripe connected account, where incentive payouts are transferred: an id only."""

    driver = models.OneToOneField("rides.Driver", on_delete=models.PROTECT, related_name="stripe")
    account_id = models.CharField(max_length=255, unique=True)
    created_at = models.DateTimeField(default=timezone.now)

    def __str__(self) -> str:
        return self.account_id


class Payment(models.Model):
    class Kind(models.TextChoices):
        RIDE = "ride"  # authorised at request, captured at completion
        EXTRA = "extra"  # a final fare above the authorisation: the excess, charged
        CANCELLATION_FEE = "cancellation_fee"

    class Status(models.TextChoices):
        PENDING = "pending"  # row written, the Stripe call not answered yet
        AUTHORIZED = "authorized"
        RELEASED = "released"
        FAILED = "failed"
        CAPTURED = "captured"  # also: charged, for extras and fees
        PARTIALLY_REFUNDED = "partially_refunded"
        REFUNDED = "refunded"
        DISPUTED = "disputed"

    ride = models.ForeignKey("rides.Ride", on_delete=models.PROTECT, related_name="payments")
    rider = models.ForeignKey("rides.Rider", on_delete=models.PROTECT, related_name="payments")
    kind = models.CharField(max_length=20, choices=Kind.choices, default=Kind.RIDE)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    amount = models.PositiveIntegerField()  # authorised (or charged) amount, minor units
    amount_captured = models.PositiveIntegerField(default=0)
    amount_refunded = models.PositiveIntegerField(default=0)
    # The promo discount on the estimate, taken off `amount` (`rides.money.authorization_amount`);
    # receipts sent before receipts recorded their total showed the fare less this.
    discount = models.PositiveIntegerField(default=0)
    currency = models.CharField(max_length=3)
    stripe_payment_intent_id = models.CharField(max_length=255, blank=True, db_index=True)
    failure_code = models.CharField(max_length=100, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["ride", "kind"], name="payment_one_per_ride_kind"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payment_amount_positive"),
            models.CheckConstraint(
                condition=Q(amount_refunded__lte=models.F("amount_captured")),
                name="payment_refund_within_capture",
            ),
        ]
        indexes = [models.Index(fields=["status", "created_at"], name="payment_status_idx")]

    def __str__(self) -> str:
        return f"Payment {self.pk} ({self.kind}, {self.status}, {self.amount} {self.currency})"


class PaymentEvent(models.Model):
    """One state change of a payment (or an event that was refused as out of order)."""

    payment = models.ForeignKey(Payment, on_delete=models.CASCADE, related_name="events")
    old = models.CharField(max_length=20, blank=True)
    new = models.CharField(max_length=20)
    source = models.CharField(max_length=100)  # "job:payments.capture_payment", "webhook:evt_…"
    note = models.CharField(max_length=500, blank=True)
    at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["at", "id"]

    def __str__(self) -> str:
        return f"{self.old or '-'} → {self.new}"


class Refund(models.Model):
    class Status(models.TextChoices):
        PENDING = "pending"
        SUCCEEDED = "succeeded"
        FAILED = "failed"

    payment = models.ForeignKey(Payment, on_delete=models.PROTECT, related_name="refunds")
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    reason = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    stripe_refund_id = models.CharField(max_length=255, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    created_at = models.DateTimeField(default=timezone.now)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(condition=Q(amount__gt=0), name="refund_amount_positive")
        ]

    def __str__(self) -> str:
        return f"Refund {self.pk} of payment {self.payment_id} ({self.amount} {self.currency})"


class WebhookEvent(models.Model):
    """A verified Stripe event, stored once per event id (Stripe resends)."""

    event_id = models.CharField(max_length=255, unique=True)
    type = models.CharField(max_length=100)
    payload = models.JSONField()
    received_at = models.DateTimeField(default=timezone.now)
    processed_at = models.DateTimeField(null=True, blank=True)
    outcome = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]

    def __str__(self) -> str:
        return f"{self.event_id} ({self.type})"


class Payout(models.Model):
    """A driver's incentive for one ISO week, paid by a Stripe transfer to the driver's connected
    account: one row per driver and week, whoever asks."""

    class Status(models.TextChoices):
        PENDING = "pending"  # row written, the transfer not answered yet
        PAID = "paid"
        FAILED = "failed"  # Stripe refused, or retries ran out; ops may retry the dead letter

    driver = models.ForeignKey("rides.Driver", on_delete=models.PROTECT, related_name="payouts")
    week = models.CharField(max_length=8)  # ISO week, "2026-W08"
    rides = models.PositiveIntegerField()
    amount = models.PositiveIntegerField()
    currency = models.CharField(max_length=3)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.PENDING)
    stripe_transfer_id = models.CharField(max_length=255, blank=True)
    failure_message = models.CharField(max_length=500, blank=True)
    failures = models.PositiveSmallIntegerField(default=0)  # each retry after one: a new key
    created_at = models.DateTimeField(default=timezone.now)
    paid_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-week", "driver_id"]
        constraints = [
            models.UniqueConstraint(fields=["driver", "week"], name="payout_once_per_week"),
            models.CheckConstraint(condition=Q(amount__gt=0), name="payout_amount_positive"),
        ]

    def __str__(self) -> str:
        return f"{self.driver} {self.week}: {self.amount} {self.currency}"
