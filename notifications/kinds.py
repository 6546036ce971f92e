"""What each kind of notification is: who hears it, for how long a push about it stays true
(its time to live), which ride states it is true in, and which email, if any, it also has."""

from dataclasses import dataclass
from datetime import timedelta

from notifications.models import Kind, Notification
from rides.models import Ride

S = Ride.Status


@dataclass(frozen=True)
class KindSpec:
    audience: str  # "rider" or "driver"
    ttl: timedelta  # FCM's time to live, and ours: not sent after it
    ride_states: tuple[str, ...]  # the ride must be in one when the push is sent; () any
    email: str | None = None  # the Notification.Template of its email


KINDS: dict[str, KindSpec] = {
    Kind.DRIVER_ASSIGNED: KindSpec("rider", timedelta(minutes=10), (S.ACCEPTED,)),
    Kind.DRIVER_ARRIVING: KindSpec("rider", timedelta(minutes=3), (S.ACCEPTED,)),
    Kind.RIDE_STARTED: KindSpec("rider", timedelta(minutes=15), (S.IN_PROGRESS,)),
    Kind.RIDE_COMPLETED: KindSpec(
        "rider", timedelta(hours=24), (S.COMPLETED,), Notification.Template.RECEIPT
    ),
    Kind.PAYMENT_FAILED: KindSpec(
        "rider", timedelta(hours=24), (), Notification.Template.PAYMENT_FAILED
    ),
    Kind.REFUND_ISSUED: KindSpec(
        "rider", timedelta(days=7), (), Notification.Template.REFUND_CONFIRMATION
    ),
    Kind.RIDE_OFFER: KindSpec("driver", timedelta(minutes=2), (S.REQUESTED,)),
    Kind.RIDE_CANCELLED: KindSpec(
        "driver", timedelta(minutes=10), (S.CANCELLED,), Notification.Template.RIDE_CANCELLED
    ),
}


def collapse_key(kind: str) -> str:
    """One per kind: a newer push of a kind replaces an older one the device has not shown."""
    return f"bimride-{kind}"


# The kind whose email preference governs each email template (the welcome email has none).
KIND_OF_TEMPLATE = {spec.email: kind for kind, spec in KINDS.items() if spec.email}
