"""Every write to devices, pushes and notification preferences, and the sending of pushes.

An event becomes pushes in two steps. Its subscriber (`push_fan_out`, in a job of its own)
writes one Push per active device of the user who is told, keyed "<kind>:<object>:<device>",
and enqueues one `notifications.send_push` job per push under the same key: an event handled
twice pushes once per device. Each send (`push_send`) first commits the push's state, then
calls FCM holding no lock, then commits FCM's answer, as email does. A push is not sent once
it stopped being true: after its time to live, or when the ride is no longer in the state the
push speaks of. A token FCM no longer knows deactivates its device at once, without a retry.
"""

import logging
from dataclasses import dataclass
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone
from prometheus_client import Counter

from bimride.db import patiently, provider_call
from bimride.errors import NotFound, ValidationError
from bimride.jobs import enqueue, ratelimit
from notifications import fcm, selectors
from notifications.kinds import KINDS, collapse_key
from notifications.models import Device, Kind, Preference, Push
from notifications.push_texts import text_for
from rides.models import Ride, RideOffer

logger = logging.getLogger(__name__)
User = get_user_model()

SEND_PUSH = "notifications.send_push"
FCM = ratelimit.provider("fcm")  # its budget: PROVIDER_RATE_LIMITS["fcm"]
RECORD_PATIENCE = 8  # seconds to keep trying to record an accepted push while the DB is down
PRUNE_CHUNK = 1000
Status = Push.Status

PUSHES = Counter("bimride_pushes", "Pushes by kind and final outcome.", ["kind", "outcome"])
PUSH_ERRORS = Counter("bimride_push_errors", "Failed push attempts by kind.", ["kind"])


# --- devices ------------------------------------------------------------------------------------
@transaction.atomic
def device_register(
    *, user, token: str, platform: str, app_version: str = "", locale: str = "en"
) -> tuple[Device, bool]:
    """Register an app install's push token for `user`; a token registered before (by anyone)
    moves to `user` and is active again. Returns the device and whether it is new."""
    now = timezone.now()
    fields = {
        "user": user,
        "platform": platform,
        "app_version": app_version,
        "locale": locale or "en",
        "active": True,
        "last_seen_at": now,
        "deactivated_at": None,
        "deactivated_reason": "",
    }
    device = Device.objects.select_for_update().filter(token=token).first()
    if device is None:
        try:
            with transaction.atomic():
                return Device.objects.create(token=token, created_at=now, **fields), True
        except IntegrityError:  # registered at this moment by a racing request
            device = Device.objects.select_for_update().get(token=token)
    for name, value in fields.items():
        setattr(device, name, value)
    device.save()
    return device, False


@transaction.atomic
def device_delete(*, user, device_id: int) -> None:
    """Forget one of `user`'s devices (NotFound for anyone else's)."""
    device = selectors.device_get_for(user=user, device_id=device_id)
    Device.objects.filter(pk=device.pk).delete()


def device_deactivate(*, device_id: int, reason: str) -> None:
    """Send a device nothing more (FCM does not know its token any longer)."""
    Device.objects.filter(pk=device_id, active=True).update(
        active=False, deactivated_at=timezone.now(), deactivated_reason=reason[:200]
    )


def device_prune(*, idle_days: int) -> int:
    """Delete the devices not registered again for `idle_days` days, a chunk per statement;
    their pushes stay, without a device. Returns how many were deleted."""
    cutoff, deleted = timezone.now() - timedelta(days=idle_days), 0
    while True:
        ids = list(
            Device.objects.filter(last_seen_at__lt=cutoff).values_list("pk", flat=True)[
                :PRUNE_CHUNK
            ]
        )
        if not ids:
            return deleted
        Device.objects.filter(pk__in=ids).delete()
        deleted += len(ids)


# --- preferences --------------------------------------------------------------------------------
@transaction.atomic
def preferences_update(*, user, changes: list[dict]) -> list[dict]:
    """Set push and/or email per kind (a kind without an email takes no email choice); return
    all of the user's preferences."""
    for change in changes:
        spec = KINDS[change["kind"]]
        if "email" in change and spec.email is None:
            raise ValidationError(
                f"{change['kind']} is never sent by email.",
                fields={"preferences": [f"{change['kind']}: no email to turn on or off."]},
            )
        preference, _ = Preference.objects.select_for_update().get_or_create(
            user=user, kind=change["kind"]
        )
        for channel in ("push", "email"):
            if channel in change:
                setattr(preference, channel, change[channel])
        preference.updated_at = timezone.now()
        preference.save()
    return selectors.preferences_for(user=user)


# --- fan-out ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Event:
    """What a push is about: its kind, its ride, the object it is keyed by, plain values."""

    kind: str
    ride_id: int | None
    ref: int  # the event's object: the ride, the payment, the refund
    data: dict


def push_fan_out(*, event: Event, user_id: int | None) -> list[Push]:
    """Write one push per active device of `user_id` who wants pushes of `event.kind`, and
    enqueue a send job for each (idempotent per event and device). Call in a transaction."""
    if not (settings.FCM_CREDENTIALS_FILE or settings.FCM_CREDENTIALS_JSON):
        logger.info("%s: pushes are not configured (FCM_CREDENTIALS_FILE unset)", event.kind)
        return []
    if user_id is None or not selectors.wants(user_id=user_id, kind=event.kind, channel="push"):
        return []
    spec, now, pushes = KINDS[event.kind], timezone.now(), []
    for device in Device.objects.filter(user_id=user_id, active=True).order_by("pk"):
        key = f"{event.kind}:{event.ref}:{device.pk}"
        push, created = Push.objects.get_or_create(
            key=key,
            defaults={
                "kind": event.kind,
                "device": device,
                "user_id": user_id,
                "ride_id": event.ride_id,
                "data": event.data,
                "collapse_key": collapse_key(event.kind),
                "expires_at": now + spec.ttl,
            },
        )
        if created:
            payload = {"push_id": push.pk}
            push.job = enqueue(SEND_PUSH, payload, idempotency_key=f"push:{key}")
            push.save(update_fields=["job"])
        pushes.append(push)
    return pushes


def push_ride_event(*, kind: str, ride_id: int, **data) -> list[Push]:
    """Push `kind` about a ride to its rider (or, for driver kinds, its driver)."""
    ride = Ride.objects.select_related("rider", "driver").filter(pk=ride_id).first()
    if ride is None:
        raise NotFound(f"No ride {ride_id}.")
    if KINDS[kind].audience == "rider":
        user_id = ride.rider.user_id
    else:
        user_id = ride.driver.user_id if ride.driver else None
    return push_fan_out(event=Event(kind, ride.pk, ride.pk, data), user_id=user_id)


def push_ride_offer(*, ride_id: int, driver_id: int) -> list[Push]:
    """Tell a driver a requested ride is offered to them, once per ride."""
    offer = RideOffer.objects.select_related("driver").filter(ride=ride_id, driver=driver_id)
    offer = offer.first()
    if offer is None:
        return []
    data = {"pickup_km": round(offer.distance_km, 1)}
    event = Event(Kind.RIDE_OFFER, ride_id, ride_id, data)
    return push_fan_out(event=event, user_id=offer.driver.user_id)


def push_money_event(*, kind: str, ride_id: int, ref: int, amount: int, currency: str) -> list:
    """Tell the rider of a failed payment or an issued refund, once per payment or refund."""
    ride = Ride.objects.select_related("rider").filter(pk=ride_id).first()
    if ride is None:
        raise NotFound(f"No ride {ride_id}.")
    event = Event(kind, ride.pk, ref, {"amount": amount, "currency": currency})
    return push_fan_out(event=event, user_id=ride.rider.user_id)


# --- sending ------------------------------------------------------------------------------------
def push_send(*, push_id: int, job_id: int | None = None, trace_id: str = "") -> dict:
    """Send a push once, if it is still true and its device still active. Call from a job
    declared `atomic=False`: the push's state must commit on its own.

    A dead token deactivates the device (no retry); FCM refusing the message raises
    PushRejected (the push fails); a 429 pauses every job's pushes for its Retry-After (the job
    snoozes, using no attempt); other errors raise, to be retried."""
    ratelimit.take(FCM)
    push, outcome, message = _begin_send(push_id, job_id, trace_id)
    if outcome is not None:
        return outcome
    provider_call("FCM")
    try:
        name = fcm.send(message)
    except fcm.Unregistered as error:
        return _record_unregistered(push, str(error))
    except fcm.Throttled as error:
        Push.objects.filter(pk=push.pk).update(error=f"{error}"[:2000])
        raise ratelimit.pause(FCM, error.seconds) from error
    except fcm.PushRejected as error:
        push_fail(push_id=push.pk, error=str(error))
        raise
    except Exception as error:
        PUSH_ERRORS.labels(push.kind).inc()
        Push.objects.filter(pk=push.pk).update(error=f"{type(error).__name__}: {error}"[:2000])
        raise
    # Failing to record an accepted push would make the retry send it a second time.
    patiently(_record_sent, push.pk, name, patience=RECORD_PATIENCE)
    _count(push.kind, Status.SENT)
    logger.info("push %s (%s) sent to device %s", push.pk, push.kind, push.device_id)
    return {"status": Status.SENT, "push_id": push.pk, "message": name}


@transaction.atomic
def _begin_send(
    push_id: int, job_id: int | None, trace_id: str
) -> tuple[Push, dict | None, fcm.Message | None]:
    """Lock the push; say why it is not sent, or count the attempt and build its message."""
    push = Push.objects.select_for_update(of=("self",)).select_related("device").get(pk=push_id)
    if push.status in Push.FINAL:
        return push, {"status": push.status, "push_id": push.pk, "already": True}, None
    now, device = timezone.now(), push.device
    ride = (
        Ride.objects.select_related("driver").filter(pk=push.ride_id).first()
        if push.ride_id
        else None
    )
    reason = _why_not(push, device, ride, now)
    if reason is not None:
        status, error = reason
        push.status, push.error = status, error
        push.save(update_fields=["status", "error"])
        _count(push.kind, status)
        logger.info("push %s (%s) not sent: %s", push.pk, push.kind, error)
        return push, {"status": status, "push_id": push.pk, "reason": error}, None
    text = text_for(push, ride, device.locale)
    push.title, push.body, push.error = text.title, text.body, ""
    push.attempts += 1
    push.last_attempt_at, push.job_id, push.trace_id = now, job_id, trace_id[:64]
    push.status = Status.QUEUED
    push.save()
    message = fcm.Message(
        token=device.token,
        platform=device.platform,
        title=text.title,
        body=text.body,
        data={"kind": push.kind, "ride_id": str(push.ride_id or ""), "push_id": str(push.pk)},
        collapse_key=push.collapse_key,
        ttl_seconds=int((push.expires_at - now).total_seconds()),
        expires_epoch=int(push.expires_at.timestamp()),
    )
    return push, None, message


def _why_not(push: Push, device: Device | None, ride: Ride | None, now) -> tuple | None:
    """(status, reason) of a push that must not be sent now, or None to send it."""
    if device is None or not device.active:
        return Status.SKIPPED, "The device was deactivated or removed."
    if device.user_id != push.user_id:  # its token was registered again, by another account
        return Status.SKIPPED, "The device changed hands since the push was written."
    if now >= push.expires_at:
        return Status.EXPIRED, f"Its time to live ended at {push.expires_at.isoformat()}."
    states = KINDS[push.kind].ride_states
    if states and (ride is None or ride.status not in states):
        status = ride.status if ride else "gone"
        return Status.STALE, f"The ride is {status} now: a {push.kind} push is no longer true."
    return None


def _record_unregistered(push: Push, error: str) -> dict:
    with transaction.atomic():
        Push.objects.filter(pk=push.pk).update(status=Status.UNREGISTERED, error=error[:2000])
        device_deactivate(device_id=push.device_id, reason="FCM: token unregistered")
    _count(push.kind, Status.UNREGISTERED)
    logger.info("push %s: device %s unregistered, deactivated", push.pk, push.device_id)
    return {"status": Status.UNREGISTERED, "push_id": push.pk, "device_deactivated": True}


@transaction.atomic
def _record_sent(push_id: int, name: str) -> None:
    now = timezone.now()
    push = Push.objects.select_for_update().get(pk=push_id)
    push.status, push.message_name, push.sent_at, push.error = Status.SENT, name, now, ""
    push.save()
    Device.objects.filter(pk=push.device_id).update(last_push_at=now)


def push_fail(*, push_id: int, error: str) -> None:
    """Mark the push failed unless it was sent or settled meanwhile (also the send job's
    `on_dead` hook)."""
    with transaction.atomic():
        push = Push.objects.select_for_update().filter(pk=push_id).first()
        if push is None or push.status in (*Push.FINAL, Status.FAILED):
            return
        push.status, push.error = Status.FAILED, error[:2000]
        push.save(update_fields=["status", "error"])
    _count(push.kind, Status.FAILED)


def _count(kind: str, outcome: str) -> None:
    PUSHES.labels(kind, outcome).inc()
