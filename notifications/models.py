"""The notification log (one row per email we mean to send) and the suppressed addresses."""

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone


class Notification(models.Model):
    """One email: who gets it, from which template, and what became of it.

    `key` names the email, not the attempt ("receipt:42"): every attempt of every job that
    sends it finds this row, so a message the provider accepted is never sent again.
    """

    class Status(models.TextChoices):
        QUEUED = "queued"  # not accepted by the provider yet (attempts may have failed)
        SENT = "sent"  # accepted by the provider: it has a message id
        DELIVERED = "delivered"
        BOUNCED = "bounced"
        COMPLAINED = "complained"
        FAILED = "failed"  # rejected by the provider, or retries exhausted
        SUPPRESSED = "suppressed"  # not sent: the address bounced or complained before

    class Template(models.TextChoices):
        WELCOME = "welcome"
        RECEIPT = "receipt"
        RIDE_CANCELLED = "ride_cancelled"
        PAYMENT_FAILED = "payment_failed"
        REFUND_CONFIRMATION = "refund_confirmation"

    # Statuses of a message the provider accepted: a job finding one of these does not send.
    ACCEPTED = (Status.SENT, Status.DELIVERED, Status.BOUNCED, Status.COMPLAINED)

    key = models.CharField(max_length=200, unique=True)
    template = models.CharField(max_length=40, choices=Template.choices)
    recipient = models.EmailField(max_length=254)
    subject = models.CharField(max_length=200)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    # The provider's id of the message, the one its tracking events carry.
    message_id = models.CharField(max_length=255, null=True, blank=True, unique=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)  # why the last attempt failed, or why it was skipped
    last_event = models.CharField(max_length=40, blank=True)  # the last tracking event's type
    # The total the email states (minor units): a receipt's charge, a refund's amount.
    amount = models.PositiveIntegerField(null=True, blank=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    ride = models.ForeignKey(
        "rides.Ride",
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        related_name="notifications",
    )
    # What sent it, so ops staff can send it again: the job type and its payload.
    job_name = models.CharField(max_length=100)
    payload = models.JSONField(default=dict)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # the job of the last attempt
    resend_of = models.ForeignKey(
        "self", null=True, blank=True, on_delete=models.SET_NULL, related_name="resends"
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    delivered_at = models.DateTimeField(null=True, blank=True)
    last_event_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [
            models.Index(fields=["status", "created_at"], name="notification_status_idx"),
            models.Index(fields=["recipient"], name="notification_recipient_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status__in=["sent", "delivered", "bounced", "complained"])
                | Q(message_id__isnull=False, sent_at__isnull=False),
                name="notification_accepted_has_message_id",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.template} to {self.recipient} ({self.status})"


class Suppression(models.Model):
    """An address we no longer send to: it hard-bounced, complained, or staff added it."""

    class Reason(models.TextChoices):
        BOUNCED = "bounced"
        COMPLAINED = "complained"
        MANUAL = "manual"

    email = models.EmailField(max_length=254, unique=True)  # stored lower case
    reason = models.CharField(max_length=20, choices=Reason.choices)
    detail = models.TextField(blank=True)  # the provider's words, or staff's note
    notification = models.ForeignKey(
        Notification, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(email=models.functions.Lower("email")), name="suppression_email_lower"
            )
        ]

    def __str__(self) -> str:
        return f"{self.email} ({self.reason})"


class TrackingEvent(models.Model):
    """A provider's tracking event, applied to the log once: a redelivered event (providers
    retry a webhook until it answers 2xx) finds its key taken and changes nothing."""

    # "<provider>:<the provider's event id>", or of a digest of the event where it has no id
    key = models.CharField(max_length=200, unique=True)
    notification = models.ForeignKey(
        Notification, on_delete=models.CASCADE, related_name="tracking_events"
    )
    event_type = models.CharField(max_length=40)  # anymail's normalised type: delivered, …
    occurred_at = models.DateTimeField()
    received_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["occurred_at", "id"]

    def __str__(self) -> str:
        return f"{self.event_type} of notification {self.notification_id}"


# --- pushes -------------------------------------------------------------------------------------
class Kind(models.TextChoices):
    """What a rider or driver is told, by push and (for some kinds) by email."""

    DRIVER_ASSIGNED = "driver_assigned"
    DRIVER_ARRIVING = "driver_arriving"
    RIDE_STARTED = "ride_started"
    RIDE_COMPLETED = "ride_completed"  # its email is the receipt
    PAYMENT_FAILED = "payment_failed"
    REFUND_ISSUED = "refund_issued"
    RIDE_OFFER = "ride_offer"  # to a driver
    RIDE_CANCELLED = "ride_cancelled"  # push: the driver, when the rider cancels; email: the rider


class Device(models.Model):
    """An app install that receives pushes: its FCM registration token, a secret shown to no one
    (not in the API, the admin, the logs nor a job's payload)."""

    class Platform(models.TextChoices):
        ANDROID = "android"
        IOS = "ios"
        WEB = "web"

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="push_devices"
    )
    token = models.CharField(max_length=1024, unique=True)
    platform = models.CharField(max_length=10, choices=Platform.choices)
    app_version = models.CharField(max_length=40, blank=True)
    locale = models.CharField(max_length=20, default="en")  # the language its pushes are in
    active = models.BooleanField(default=True)
    created_at = models.DateTimeField(default=timezone.now)
    # Registered (or registered again) by the app: the pruning schedule's measure of use.
    last_seen_at = models.DateTimeField(default=timezone.now)
    last_push_at = models.DateTimeField(null=True, blank=True)  # FCM last accepted a push
    deactivated_at = models.DateTimeField(null=True, blank=True)
    deactivated_reason = models.CharField(max_length=200, blank=True)

    class Meta:
        ordering = ["-last_seen_at", "-id"]
        indexes = [
            models.Index(fields=["user"], name="device_active_user_idx", condition=Q(active=True)),
            models.Index(fields=["last_seen_at"], name="device_last_seen_idx"),
        ]

    def __str__(self) -> str:
        return f"{self.platform} device {self.pk} of user {self.user_id}"


class Push(models.Model):
    """One push to one device. `key` names it ("<kind>:<event's object>:<device id>"), so an
    event handled twice, or a job run twice, pushes once."""

    class Status(models.TextChoices):
        QUEUED = "queued"  # not accepted by FCM yet (attempts may have failed)
        SENT = "sent"  # accepted by FCM: it has a message name
        EXPIRED = "expired"  # not sent: its time to live ran out first
        STALE = "stale"  # not sent: no longer true ("arriving" after the ride started)
        UNREGISTERED = "unregistered"  # FCM no longer knows the token: the device is deactivated
        SKIPPED = "skipped"  # not sent: the device was deactivated meanwhile
        FAILED = "failed"  # refused by FCM, or retries exhausted

    FINAL = (Status.SENT, Status.EXPIRED, Status.STALE, Status.UNREGISTERED, Status.SKIPPED)

    key = models.CharField(max_length=200, unique=True)
    kind = models.CharField(max_length=30, choices=Kind.choices)
    device = models.ForeignKey(
        Device, null=True, blank=True, on_delete=models.SET_NULL, related_name="pushes"
    )
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ride = models.ForeignKey(
        "rides.Ride", null=True, blank=True, on_delete=models.SET_NULL, related_name="pushes"
    )
    data = models.JSONField(default=dict, blank=True)  # the event's plain values (an amount)
    status = models.CharField(max_length=20, choices=Status.choices, default=Status.QUEUED)
    collapse_key = models.CharField(max_length=64)
    expires_at = models.DateTimeField()  # the time to live's end: not sent after it
    title = models.CharField(max_length=200, blank=True)  # as last sent or about to be
    body = models.TextField(blank=True)
    message_name = models.CharField(max_length=255, blank=True)  # FCM's "projects/…/messages/…"
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)  # why the last attempt failed, or why it was not sent
    trace_id = models.CharField(max_length=64, blank=True)
    job = models.ForeignKey(
        "jobs.Job", null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )  # the job of the last attempt
    created_at = models.DateTimeField(default=timezone.now)
    last_attempt_at = models.DateTimeField(null=True, blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "pushes"
        indexes = [
            models.Index(fields=["created_at", "status"], name="push_created_status_idx"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=~Q(status="sent") | Q(sent_at__isnull=False),
                name="push_sent_has_sent_at",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kind} push {self.pk} ({self.status})"


class Preference(models.Model):
    """A user's choice for one kind: push and/or email. No row: both on (where the kind has
    them)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="notification_preferences"
    )
    kind = models.CharField(max_length=30, choices=Kind.choices)
    push = models.BooleanField(default=True)
    email = models.BooleanField(default=True)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "kind"], name="preference_once_per_kind")
        ]

    def __str__(self) -> str:
        return f"{self.kind} of user {self.user_id}"
