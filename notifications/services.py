"""Every write to the notification log and the suppression list, and the sending of email.

An email is sent at most once per notification key and at least once per job: each attempt
first commits the notification's state, then talks to the provider holding no lock, then
commits the provider's message id. A re-run finding a message id does not send again. The one
window left is a worker dying after the provider accepted the message and before that commit:
neither Postmark's nor SendGrid's send API takes an idempotency key, so that attempt's retry
sends a second copy.
"""

import hashlib
import json
import logging
import smtplib
from collections.abc import Iterator
from dataclasses import dataclass

from anymail.exceptions import (
    AnymailAPIError,
    AnymailInvalidAddress,
    AnymailRecipientsRefused,
)
from anymail.signals import AnymailTrackingEvent, EventType
from django.db import transaction
from django.db.models import F
from django.utils import timezone

from bimride.db import patiently, provider_call
from bimride.errors import BimRideError, NotFound, PermanentError
from bimride.jobs import Job, enqueue, ratelimit
from notifications import emails, selectors
from notifications.emails import Email
from notifications.models import Notification, Suppression, TrackingEvent
from payments.models import Payment
from rides.models import Ride
from rides.services import ride_money, ride_set_receipt_status

logger = logging.getLogger(__name__)

Status = Notification.Status
CANCELLATIONS_TOLD = {"driver": "cancelled by the driver", "system": "expired"}
RETRIABLE_HTTP_4XX = (408,)  # timeouts pass (a 429 pauses the provider); other 4xx are final
RECORD_PATIENCE = 8  # seconds to keep trying to record an accepted message while the DB is down
EMAIL = ratelimit.provider("email")


class EmailRejected(PermanentError):
    """The provider refused the message (a bad address, a malformed request): never retried."""

    code = "email_rejected"


@dataclass(frozen=True)
class Origin:
    """The job sending an email: its notification key, type and payload (kept for resends)."""

    key: str
    job_name: str
    payload: dict
    job_id: int | None = None


# --- sending ------------------------------------------------------------------------------------
def notification_send(*, email: Email, origin: Origin) -> dict:
    """Send `email` under `origin.key` unless the provider already accepted it or the address is
    suppressed. Call from a job declared `atomic=False`: the log's state must commit on its own.

    Raises EmailRejected when the provider refuses the message (the notification is then
    failed); lets transient errors (5xx, timeouts, connection errors) raise, to be retried.
    An email the recipient turned off (`/api/me/notifications`) is not sent.
    """
    if not selectors.wants_email(user_id=email.user_id, template=email.template):
        if email.template == Notification.Template.RECEIPT and email.ride_id:
            ride_set_receipt_status(ride_id=email.ride_id, status=Ride.ReceiptStatus.NONE)
        return {"skipped": f"the recipient turned {email.template} emails off"}
    ratelimit.take(EMAIL)
    notification, outcome = _begin_attempt(email, origin)
    if outcome is not None:
        return outcome
    message = emails.message_for(email)
    provider_call("The email provider")
    try:
        message.send()
    except Exception as error:
        if _status(error) == 429:  # every job's email waits out the pause the provider asked
            _record_error(notification.pk, f"{type(error).__name__}: 429, paused")
            raise ratelimit.pause(EMAIL, _retry_after(error)) from error
        reason = _rejection(error)
        if reason is None:
            _record_error(notification.pk, f"{type(error).__name__}: {error}")
            raise
        notification_fail(key=origin.key, error=reason)
        raise EmailRejected(reason) from error
    status = getattr(message, "anymail_status", None)  # anymail backends report the provider's
    message_id = (status.message_id if status else None) or message.extra_headers["Message-ID"]
    # Failing to record an accepted message would make the retry send it a second time.
    patiently(_record_sent, notification.pk, str(message_id), patience=RECORD_PATIENCE)
    return {"status": Status.SENT, "notification_id": notification.pk, "message_id": message_id}


@transaction.atomic
def _begin_attempt(email: Email, origin: Origin) -> tuple[Notification, dict | None]:
    """Find or create the notification, locked; say why not to send, or count the attempt."""
    notification, _ = Notification.objects.select_for_update().get_or_create(
        key=origin.key,
        defaults={
            "template": email.template,
            "recipient": email.to,
            "subject": email.subject,
            "job_name": origin.job_name,
            "payload": origin.payload,
            "user_id": email.user_id,
            "ride_id": email.ride_id,
        },
    )
    if notification.status in Notification.ACCEPTED and notification.message_id:
        return notification, {
            "status": notification.status,
            "notification_id": notification.pk,
            "message_id": notification.message_id,
            "already_sent": True,
        }
    now = timezone.now()
    notification.recipient, notification.subject = email.to, email.subject
    notification.amount, notification.job_id = email.amount, origin.job_id
    suppression = suppression_for(email=email.to)
    if suppression is not None:
        notification.status = Status.SUPPRESSED
        notification.error = f"{suppression.email} is suppressed ({suppression.reason})"
        notification.save()
        _set_receipt_status(notification, Ride.ReceiptStatus.FAILED)
        return notification, {"skipped": notification.error, "notification_id": notification.pk}
    notification.status, notification.error = Status.QUEUED, ""
    notification.attempts += 1
    notification.last_attempt_at = now
    notification.save()
    return notification, None


def _rejection(error: Exception) -> str | None:
    """Why the provider refused the message for good, or None for an error worth a retry."""
    if isinstance(error, AnymailRecipientsRefused) and error.response is not None:
        return f"{error.esp_name} refused the recipient: {_api_errors(error)}"
    if isinstance(error, (AnymailRecipientsRefused, AnymailInvalidAddress)):
        return str(error).splitlines()[0]
    if isinstance(error, smtplib.SMTPRecipientsRefused):
        return f"The mail server refused the recipients: {error.recipients}"
    if isinstance(error, AnymailAPIError):
        status = error.status_code
        if status is not None and 400 <= status < 500 and status not in RETRIABLE_HTTP_4XX:
            return f"{error.esp_name or 'The provider'} answered {status}: {_api_errors(error)}"
    return None


def _status(error: Exception) -> int | None:
    return error.status_code if isinstance(error, AnymailAPIError) else None


def _retry_after(error: AnymailAPIError) -> float | None:
    try:
        return float(error.response.headers.get("Retry-After", ""))
    except (AttributeError, ValueError):
        return None


def _api_errors(error: AnymailAPIError | AnymailRecipientsRefused) -> str:
    """The provider's own words: SendGrid's `errors`, Postmark's `Message`."""
    try:
        body = error.response.json()
        if "errors" in body:
            return "; ".join(str(e.get("message", e)) for e in body["errors"])
        return str(body["Message"])
    except (AttributeError, KeyError, TypeError, ValueError):
        return getattr(error.response, "text", "")[:500]


def _record_error(notification_id: int, error: str) -> None:
    Notification.objects.filter(pk=notification_id).update(error=error[:2000])


@transaction.atomic
def _record_sent(notification_id: int, message_id: str) -> None:
    notification = Notification.objects.select_for_update().get(pk=notification_id)
    notification.status, notification.message_id = Status.SENT, message_id
    notification.sent_at, notification.error = timezone.now(), ""
    notification.save()
    _set_receipt_status(notification, Ride.ReceiptStatus.SENT)


def notification_fail(*, key: str, error: str) -> None:
    """Mark the notification `key` failed, unless the provider accepted it meanwhile (also the
    `on_dead` hook of every email job)."""
    with transaction.atomic():
        notification = Notification.objects.select_for_update().filter(key=key).first()
        if notification is None or notification.status in (*Notification.ACCEPTED, Status.FAILED):
            return  # accepted meanwhile, or failed already with the provider's own reason
        notification.status, notification.error = Status.FAILED, error[:2000]
        notification.save()
        _set_receipt_status(notification, Ride.ReceiptStatus.FAILED)


def _set_receipt_status(notification: Notification, status: str) -> None:
    if notification.template == Notification.Template.RECEIPT and notification.ride_id:
        ride_set_receipt_status(ride_id=notification.ride_id, status=status)


# --- the emails ---------------------------------------------------------------------------------
def welcome_send(*, user_id: int, origin: Origin) -> dict:
    """Welcome a new rider or driver, once."""
    return notification_send(email=emails.welcome(user_id=user_id), origin=origin)


def receipt_send(*, ride_id: int, origin: Origin, corrected: bool = False) -> dict:
    """Send the receipt of a completed ride once its total due has been taken (it states what
    was charged), once per key; the ride's receipt status follows."""
    charges = Ride.objects.filter(pk=ride_id).values_list("charges", flat=True).first()
    if charges is None:
        raise NotFound(f"No ride {ride_id}.")
    if not charges.get("settled"):
        return {"skipped": "the ride's charge is not settled: its receipt follows payment.settled"}
    email = emails.receipt(ride_id=ride_id, corrected=corrected)
    return notification_send(email=email, origin=origin)


# --- receipts that disagreed with the charge ----------------------------------------------------
@dataclass(frozen=True)
class ReceiptMismatch:
    ride_id: int
    notification_id: int
    stated: int  # the total the receipt said, minor units
    charged: int  # what the card was charged (captured and extra), minor units
    currency: str


def receipt_mismatches(*, progress=None) -> Iterator[ReceiptMismatch]:
    """Completed rides whose last receipt sent states a total other than what the card was
    charged. A receipt sent before receipts recorded their total stated the fare less the
    promo discount on the estimate (`Payment.discount`): that is what it is checked by."""
    receipts = Notification.objects.filter(
        template=Notification.Template.RECEIPT, status__in=Notification.ACCEPTED
    ).order_by("ride_id", F("sent_at").desc(nulls_last=True), "-id")
    last: dict[int, Notification] = {}
    for notification in receipts.only("id", "ride_id", "amount", "sent_at").iterator(2000):
        last.setdefault(notification.ride_id, notification)
    rides = Ride.objects.filter(pk__in=list(last), status=Ride.Status.COMPLETED)
    rides = rides.filter(charges__settled=True).select_related("promo__promo").order_by("pk")
    legacy = dict(
        Payment.objects.filter(ride_id__in=list(last), kind=Payment.Kind.RIDE).values_list(
            "ride_id", "discount"
        )
    )
    for checked, ride in enumerate(rides.iterator(1000), start=1):
        if progress and checked % 1000 == 0:
            progress(checked)
        money = ride_money(ride)
        charged = money.captured + money.extra_charged
        receipt = last[ride.pk]
        stated = receipt.amount
        if stated is None:
            stated = ride.fare_amount - legacy.get(ride.pk, 0)
        if stated != charged:
            yield ReceiptMismatch(ride.pk, receipt.pk, stated, charged, ride.currency)


def receipt_correct(*, ride_id: int) -> Job:
    """Send a corrected receipt of the ride through the receipt job, once per ride."""
    key = f"receipt-corrected:{ride_id}"
    payload = {"ride_id": ride_id, "notification_key": key, "corrected": True}
    with transaction.atomic():
        return enqueue("notifications.send_receipt", payload, idempotency_key=key)


def ride_cancelled_send(*, ride_id: int, cancelled_by: str, origin: Origin) -> dict:
    """Tell the rider their ride was cancelled by the driver or expired; a rider who cancelled
    knows already."""
    if cancelled_by not in CANCELLATIONS_TOLD:
        return {"skipped": f"cancelled by {cancelled_by}: the rider is not told"}
    email = emails.ride_cancelled(ride_id=ride_id, cancelled_by=cancelled_by)
    return notification_send(email=email, origin=origin)


def payment_failed_send(
    *, ride_id: int, amount: int, currency: str, reason: str, origin: Origin
) -> dict:
    """Tell the rider a payment for their ride failed, once per payment."""
    email = emails.payment_failed(ride_id=ride_id, amount=amount, currency=currency, reason=reason)
    return notification_send(email=email, origin=origin)


def refund_confirmation_send(
    *, ride_id: int, refund_id: int, amount: int, currency: str, origin: Origin
) -> dict:
    """Confirm a refund to the rider, once per refund."""
    email = emails.refund_confirmation(
        ride_id=ride_id, refund_id=refund_id, amount=amount, currency=currency
    )
    return notification_send(email=email, origin=origin)


# --- resending ----------------------------------------------------------------------------------
@transaction.atomic
def notification_resend(*, notification_id: int) -> Job:
    """Send a logged email again, as a new notification sent by a new job of the same type."""
    original = Notification.objects.filter(pk=notification_id).first()
    if original is None:
        raise NotFound("No such notification.")
    root = Notification.objects.select_for_update().get(pk=original.resend_of_id or original.pk)
    if root.status == Status.SUPPRESSED or suppression_for(email=root.recipient):
        raise BimRideError(
            f"{root.recipient} is suppressed: remove the suppression first.", code="suppressed"
        )
    key = f"{root.key}:resend:{root.resends.count() + 1}"
    payload = {k: v for k, v in root.payload.items() if k != "notification_key"}
    payload["notification_key"] = key
    resend = Notification.objects.create(
        key=key,
        template=root.template,
        recipient=root.recipient,
        subject=root.subject,
        job_name=root.job_name,
        payload=payload,
        user_id=root.user_id,
        ride_id=root.ride_id,
        resend_of=root,
    )
    job = enqueue(root.job_name, payload, idempotency_key=key)
    Notification.objects.filter(pk=resend.pk).update(job=job)
    if root.template == Notification.Template.RECEIPT and root.ride_id:
        ride_set_receipt_status(ride_id=root.ride_id, status=Ride.ReceiptStatus.PENDING)
    return job


# --- suppressions -------------------------------------------------------------------------------
def suppression_for(*, email: str) -> Suppression | None:
    return Suppression.objects.filter(email=email.strip().lower()).first()


def suppression_add(
    *, email: str, reason: str, detail: str = "", notification: Notification | None = None
) -> Suppression:
    """Stop sending to `email` (idempotent: the first reason stays)."""
    suppression, _ = Suppression.objects.get_or_create(
        email=email.strip().lower(),
        defaults={"reason": reason, "detail": detail[:2000], "notification": notification},
    )
    return suppression


def suppression_remove(*, suppression_id: int) -> None:
    """Send to the address again."""
    Suppression.objects.filter(pk=suppression_id).delete()


# --- tracking -----------------------------------------------------------------------------------
# Which tracking events move a notification, and from which statuses.
TRANSITIONS = {
    EventType.DELIVERED: (Status.DELIVERED, {Status.SENT}),
    EventType.BOUNCED: (Status.BOUNCED, {Status.SENT, Status.DELIVERED}),
    EventType.COMPLAINED: (Status.COMPLAINED, {Status.SENT, Status.DELIVERED}),
    EventType.REJECTED: (Status.FAILED, {Status.SENT}),
    EventType.FAILED: (Status.FAILED, {Status.SENT}),
}
RECEIPT_STATUS = {
    Status.DELIVERED: Ride.ReceiptStatus.DELIVERED,
    Status.BOUNCED: Ride.ReceiptStatus.BOUNCED,
    Status.FAILED: Ride.ReceiptStatus.FAILED,
}


@transaction.atomic
def notification_track(*, event: AnymailTrackingEvent, esp_name: str = "") -> Notification | None:
    """Apply a provider's tracking event to the log: delivered, bounced (a hard bounce
    suppresses the address), complained (suppressed too), rejected, opened. Events for messages
    we do not know are ignored; an event applied again, or arriving out of order, never moves a
    notification backwards nor makes its last event an older one."""
    if not event.message_id:
        return None
    notification = (
        Notification.objects.select_for_update().filter(message_id=str(event.message_id)).first()
    )
    if notification is None:
        logger.info("tracking event %s for unknown message ignored", event.event_type)
        return None
    at = event.timestamp or timezone.now()
    _, new_event = TrackingEvent.objects.get_or_create(
        key=_event_key(event, esp_name),
        defaults={"notification": notification, "event_type": event.event_type, "occurred_at": at},
    )
    if not new_event:
        return notification  # applied already: the provider delivered the event again
    if notification.last_event_at is None or at >= notification.last_event_at:
        notification.last_event, notification.last_event_at = event.event_type, at
    new, sources = TRANSITIONS.get(event.event_type, (None, ()))
    if notification.status in sources:
        notification.status = new
        if new == Status.DELIVERED:
            notification.delivered_at = at
        if new in (Status.BOUNCED, Status.FAILED):
            notification.error = _event_reason(event)
        if new in RECEIPT_STATUS:
            _set_receipt_status(notification, RECEIPT_STATUS[new])
    notification.save()
    if _suppresses(event, esp_name):
        reason = (
            Suppression.Reason.COMPLAINED
            if event.event_type == EventType.COMPLAINED
            else Suppression.Reason.BOUNCED
        )
        suppression_add(
            email=notification.recipient,
            reason=reason,
            detail=_event_reason(event),
            notification=notification,
        )
    return notification


def _event_key(event: AnymailTrackingEvent, esp_name: str) -> str:
    """The event's identity: the provider's event id, or a digest of what it posted (Postmark
    gives ids to bounces only, and posts the same body again when it redelivers)."""
    if event.event_id:
        return f"{esp_name}:{event.event_id}"[:200]
    esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
    digest = hashlib.sha256(json.dumps(esp_event, sort_keys=True, default=str).encode())
    return f"{esp_name}:sha256:{digest.hexdigest()}"


def _suppresses(event: AnymailTrackingEvent, esp_name: str) -> bool:
    """A complaint, a hard bounce, or a drop because the address bounced before. A temporary
    refusal by the receiving server (SendGrid's "blocked", Postmark's "SoftBounce") is not the
    address's fault."""
    if event.event_type == EventType.COMPLAINED:
        return True
    if event.event_type == EventType.BOUNCED:
        esp_event = event.esp_event if isinstance(event.esp_event, dict) else {}
        if esp_name == "Postmark" or "RecordType" in esp_event:
            return esp_event.get("Type") == "HardBounce" or esp_event.get("Inactive") is True
        return esp_event.get("type") != "blocked"
    return event.event_type == EventType.REJECTED and event.reject_reason == "bounced"


def _event_reason(event: AnymailTrackingEvent) -> str:
    return str(event.mta_response or event.reject_reason or event.description or event.event_type)
