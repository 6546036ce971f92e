"""What each push says, in the device's language, read when the push is sent (so an ETA is
current). Templates live beside the emails': templates/notifications/push/<kind>.txt, and
push/<language>/<kind>.txt for each language they are written in; the first line is the title,
the rest the body. Amounts are formatted as the emails format them."""

import math
import re
from dataclasses import dataclass

from django.conf import settings
from django.template.loader import select_template
from django.utils import translation

from notifications.emails import decimal, money
from notifications.models import Kind, Push
from rides.models import Ride
from rides.services import distance_km, ride_money


@dataclass(frozen=True)
class Text:
    title: str
    body: str


def language_of(locale: str) -> str:
    """The language of a BCP 47 tag ("de-DE": "de"); the site's for anything else."""
    language = (locale or "").replace("_", "-").split("-")[0].lower()
    return language if re.fullmatch(r"[a-z]{2,3}", language) else language_of_site()


def language_of_site() -> str:
    return settings.LANGUAGE_CODE.split("-")[0].lower()


def text_for(push: Push, ride: Ride | None, locale: str) -> Text:
    """The title and body of `push` in `locale`."""
    language = language_of(locale)
    context = {"ride_id": push.ride_id, **_context(push, ride, locale)}
    template = select_template(
        [f"notifications/push/{language}/{push.kind}.txt", f"notifications/push/{push.kind}.txt"]
    )
    with translation.override(language):
        rendered = template.render(context).strip()
    title, _, body = rendered.partition("\n")
    # Lines joined, spaces collapsed; a no-break space (in "12,34 €") stays.
    return Text(title=title.strip()[:200], body=re.sub(r"[ \t\r\n]+", " ", body).strip())


def _context(push: Push, ride: Ride | None, locale: str) -> dict:
    driver = ride.driver if ride is not None else None
    context = {"driver": driver.name if driver else "", "car": driver.car if driver else ""}
    if push.kind == Kind.DRIVER_ASSIGNED and ride is not None:
        context["eta_minutes"] = eta_minutes(ride)
    elif push.kind == Kind.RIDE_COMPLETED and ride is not None:
        context["total"] = money(ride_total(ride), ride.currency, locale)
    elif push.kind in (Kind.PAYMENT_FAILED, Kind.REFUND_ISSUED):
        context["amount"] = money(push.data["amount"], push.data["currency"], locale)
    elif push.kind == Kind.RIDE_OFFER and ride is not None:
        context["pickup_km"] = _offer_distance(push, ride, locale)
    return context


def eta_minutes(ride: Ride) -> int | None:
    """Minutes until the driver reaches the pickup at PUSH_ETA_SPEED_KMH from their last known
    position (None when they sent none)."""
    driver = ride.driver
    if driver is None or driver.lat is None or driver.lng is None:
        return None
    km = distance_km(driver.lat, driver.lng, ride.pickup_lat, ride.pickup_lng)
    return max(1, math.ceil(km / settings.PUSH_ETA_SPEED_KMH * 60))


def ride_total(ride: Ride) -> int:
    """What the rider pays: the total due of the ride's money breakdown (the fare less its
    promo's discount on it), as the receipt and the API say."""
    return ride_money(ride).total_due or 0


def _offer_distance(push: Push, ride: Ride, locale: str) -> str:
    km = push.data.get("pickup_km")
    return decimal(km, 1, locale) if km is not None else ""
