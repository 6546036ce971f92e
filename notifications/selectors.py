"""Reads of devices, preferences and pushes that depend on who asks."""

from datetime import timedelta

from django.db.models import Count, QuerySet
from django.utils import timezone

from bimride.errors import NotFound
from notifications.kinds import KIND_OF_TEMPLATE, KINDS
from notifications.models import Device, Preference, Push


def device_list_for(*, user) -> QuerySet[Device]:
    """The user's active devices, most recently registered first."""
    return Device.objects.filter(user=user, active=True).order_by("-last_seen_at", "-id")


def device_get_for(*, user, device_id: int) -> Device:
    """One of the user's devices; NotFound for anyone else's (which do not exist for them)."""
    device = Device.objects.filter(user=user, pk=device_id).first()
    if device is None:
        raise NotFound("No such device.")
    return device


def preferences_for(*, user) -> list[dict]:
    """Every kind with the user's choice: push and email on unless turned off; `email` is None
    for a kind that has no email."""
    chosen = {p.kind: p for p in Preference.objects.filter(user=user)}
    answer = []
    for kind, spec in KINDS.items():
        preference = chosen.get(kind)
        push = preference.push if preference else True
        email = (preference.email if preference else True) if spec.email else None
        answer.append({"kind": kind, "audience": spec.audience, "push": push, "email": email})
    return answer


def wants(*, user_id: int, kind: str, channel: str) -> bool:
    """Whether the user wants `kind` by `channel` ("push" or "email"): yes unless turned off."""
    preference = Preference.objects.filter(user_id=user_id, kind=kind).first()
    return preference is None or getattr(preference, channel)


def wants_email(*, user_id: int | None, template: str) -> bool:
    """Whether an email from `template` may go to the user (welcome emails always may)."""
    kind = KIND_OF_TEMPLATE.get(template)
    return user_id is None or kind is None or wants(user_id=user_id, kind=kind, channel="email")


def push_counts(*, hours: int = 24) -> list[tuple[str, str, int]]:
    """(kind, outcome, pushes) of the pushes of the last `hours` hours."""
    since = timezone.now() - timedelta(hours=hours)
    rows = (
        Push.objects.filter(created_at__gte=since)
        .values_list("kind", "status")
        .annotate(n=Count("id"))
        .order_by("kind", "status")
    )
    return [(kind, status, n) for kind, status, n in rows]
