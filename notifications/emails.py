"""What each email says: its recipient, subject and template context, and how it is rendered.

Every amount and number is formatted here, in the recipient's locale, so the HTML and the plain
text part of an email show the very same strings. Templates live in
templates/notifications/<template>.{html,txt}.
"""

from dataclasses import dataclass
from decimal import Decimal
from email.utils import make_msgid, parseaddr

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string
from django.utils import formats, timezone, translation

from bimride.errors import NotFound
from notifications.models import Notification
from payments.selectors import card_last4_of
from rides.models import Ride
from rides.money import Breakdown
from rides.services import ride_money

User = get_user_model()
Template = Notification.Template

# Currency symbol and minor-unit exponent; anything else is shown as its code ("CHF 12.00").
CURRENCIES = {
    "usd": ("$", 2),
    "eur": ("€", 2),
    "gbp": ("£", 2),
    "cad": ("CA$", 2),
    "aud": ("A$", 2),
    "jpy": ("¥", 0),
}
SYMBOL_FIRST_LANGUAGES = ("en", "ja", "zh", "ko")  # "$12.34"; elsewhere "12,34 €"


@dataclass(frozen=True)
class Email:
    """One email, ready to render: the template's context is all plain strings and numbers."""

    template: str  # a Notification.Template value
    to: str
    subject: str
    context: dict
    locale: str
    user_id: int | None = None
    ride_id: int | None = None
    amount: int | None = None  # the total the email states (minor units), where it states one


# --- formatting ---------------------------------------------------------------------------------
def locale_of(user) -> str:
    """The language an account's emails are written in (accounts have no preference yet)."""
    return settings.LANGUAGE_CODE


def money(amount: int, currency: str, locale: str) -> str:
    """An amount in minor units, as the locale writes it: "$1,234.56", "1.234,56 €"."""
    symbol, exponent = CURRENCIES.get(currency.lower(), (currency.upper(), 2))
    with translation.override(locale):
        number = formats.number_format(
            Decimal(abs(amount)).scaleb(-exponent),
            decimal_pos=exponent,
            use_l10n=True,
            force_grouping=True,
        )
    sign = "-" if amount < 0 else ""
    if locale.split("-")[0].lower() in SYMBOL_FIRST_LANGUAGES:
        joiner = "\u00a0" if symbol.isalpha() else ""  # "CHF 12.00", but "$12.00"
        return f"{sign}{symbol}{joiner}{number}"
    return f"{sign}{number}\u00a0{symbol}"


def decimal(value, places: int, locale: str) -> str:
    with translation.override(locale):
        return formats.number_format(Decimal(str(value)), decimal_pos=places, use_l10n=True)


def when(moment, locale: str) -> str:
    local = timezone.localtime(moment)
    with translation.override(locale):
        return f"{formats.date_format(local, 'DATETIME_FORMAT')} {local.tzname()}"


def _point(lat: float, lng: float, locale: str) -> str:
    return f"{decimal(lat, 4, locale)}, {decimal(lng, 4, locale)}"


def _name(user) -> str:
    for profile in ("rider", "driver"):
        person = getattr(user, profile, None)
        if person is not None and person.name:
            return person.name
    return user.first_name or "there"


def _user(user_id: int):
    user = User.objects.filter(pk=user_id).select_related("rider", "driver").first()
    if user is None or not user.email:
        raise NotFound(f"No account {user_id} with an email address.")
    return user


def _ride(ride_id: int) -> Ride:
    ride = Ride.objects.select_related("rider__user").filter(pk=ride_id).first()
    if ride is None:
        raise NotFound(f"No ride {ride_id}.")
    return ride


def receipt_number(ride: Ride) -> str:
    return f"BR-{timezone.localtime(ride.completed_at):%Y%m%d}-{ride.pk:06d}"


def _ride_email(
    ride: Ride, template: str, subject: str, context: dict, amount: int | None = None
) -> Email:
    user = ride.rider.user
    return Email(
        template=template,
        to=user.email,
        subject=subject,
        context={"name": ride.rider.name or user.first_name or "there", "ride_id": ride.pk}
        | context,
        locale=locale_of(user),
        user_id=user.pk,
        ride_id=ride.pk,
        amount=amount,
    )


# --- the emails ---------------------------------------------------------------------------------
def welcome(*, user_id: int) -> Email:
    user = _user(user_id)
    is_driver = getattr(user, "driver", None) is not None and getattr(user, "rider", None) is None
    return Email(
        template=Template.WELCOME,
        to=user.email,
        subject="Welcome to BimRide",
        context={"name": _name(user), "is_driver": is_driver},
        locale=locale_of(user),
        user_id=user.pk,
    )


FARE_LINE_LABELS = {
    "base": "Base fare",
    "distance": "Distance ({km} km)",
    "time": "Time ({min} min)",
}


def receipt_lines(ride: Ride, money_: Breakdown, locale: str) -> list[dict]:
    """The receipt's lines, each `{"label", "amount"}`: the fare's parts, the fare, the promo
    discount and a waived excess. They add up to the total, which is what the card was charged."""
    cur = money_.currency
    km, minutes = decimal(ride.distance_km or 0, 2, locale), ride.duration_min
    lines = [
        {
            "label": FARE_LINE_LABELS[name].format(km=km, min=minutes),
            "amount": money(a, cur, locale),
        }
        for name, a in money_.fare_lines
    ]
    lines.append({"label": "Fare", "amount": money(money_.fare, cur, locale), "rule": True})
    if money_.discount:
        code = f" ({money_.promo_code})" if money_.promo_code else ""
        lines.append({"label": f"Discount{code}", "amount": money(-money_.discount, cur, locale)})
    if money_.waived:
        lines.append(
            {"label": "Small difference waived", "amount": money(-money_.waived, cur, locale)}
        )
    return lines


def receipt(*, ride_id: int, corrected: bool = False) -> Email:
    """The receipt of a completed ride whose total due has been taken (`money.settled`)."""
    ride = _ride(ride_id)
    if ride.status != Ride.Status.COMPLETED or ride.fare_amount is None:
        raise NotFound(f"Ride {ride_id} is not completed: it has no receipt.")
    money_ = ride_money(ride)
    locale = locale_of(ride.rider.user)
    number = receipt_number(ride)
    cur = money_.currency
    charged = money_.captured + money_.extra_charged
    context = {
        "corrected": corrected,
        "receipt_number": number,
        "completed_at": when(ride.completed_at, locale),
        "pickup": _point(ride.pickup_lat, ride.pickup_lng, locale),
        "dropoff": _point(ride.dropoff_lat, ride.dropoff_lng, locale),
        "distance": f"{decimal(ride.distance_km, 2, locale)} km",
        "duration": f"{ride.duration_min} min",
        "lines": receipt_lines(ride, money_, locale),
        "total": money(charged, cur, locale),
        "covered_by_promo": money_.total_due == 0 and money_.discount > 0,
        "promo_code": money_.promo_code,
        "card_last4": card_last4_of(rider_id=ride.rider_id) if charged else None,
        "held": money(money_.captured, cur, locale) if money_.extra_charged else None,
        "extra": money(money_.extra_charged, cur, locale) if money_.extra_charged else None,
        "refunded": money(-money_.refunded, cur, locale) if money_.refunded else None,
        "net_paid": money(charged - money_.refunded, cur, locale),
    }
    subject = f"Your {'corrected ' if corrected else ''}BimRide receipt {number}"
    return _ride_email(ride, Template.RECEIPT, subject, context, amount=charged)


def ride_cancelled(*, ride_id: int, cancelled_by: str) -> Email:
    ride = _ride(ride_id)
    expired = cancelled_by == "system"
    subject = (
        "No driver was available for your ride" if expired else "Your driver cancelled your ride"
    )
    locale = locale_of(ride.rider.user)
    context = {
        "expired": expired,
        "requested_at": when(ride.requested_at, locale),
        "pickup": _point(ride.pickup_lat, ride.pickup_lng, locale),
        "dropoff": _point(ride.dropoff_lat, ride.dropoff_lng, locale),
    }
    return _ride_email(ride, Template.RIDE_CANCELLED, subject, context)


def payment_failed(*, ride_id: int, amount: int, currency: str, reason: str = "") -> Email:
    ride = _ride(ride_id)
    locale = locale_of(ride.rider.user)
    context = {"amount": money(amount, currency, locale), "reason": reason}
    subject = f"Your payment for ride {ride.pk} did not go through"
    return _ride_email(ride, Template.PAYMENT_FAILED, subject, context, amount=amount)


def refund_confirmation(*, ride_id: int, refund_id: int, amount: int, currency: str) -> Email:
    """A refund of `amount`, with what has been refunded of the ride in all and what the rider
    has paid net (`rides.money`)."""
    ride = _ride(ride_id)
    money_ = ride_money(ride)
    locale = locale_of(ride.rider.user)
    formatted = money(amount, currency, locale)
    context = {
        "amount": formatted,
        "refund_id": refund_id,
        "charged": money(money_.charged, money_.currency, locale),
        "refunded": money(money_.refunded, money_.currency, locale),
        "net_paid": money(money_.net_paid, money_.currency, locale),
    }
    subject = f"Your refund of {formatted} is on its way"
    return _ride_email(ride, Template.REFUND_CONFIRMATION, subject, context, amount=amount)


# --- rendering ----------------------------------------------------------------------------------
def render(email: Email) -> tuple[str, str]:
    """The plain text and the HTML of `email`, in its locale."""
    context = {"subject": email.subject, **email.context}
    with translation.override(email.locale):
        text = render_to_string(f"notifications/{email.template}.txt", context)
        html = render_to_string(f"notifications/{email.template}.html", context)
    return text, html


def message_for(email: Email) -> EmailMultiAlternatives:
    """A Django email message for `email`, with its own Message-ID (the id of record for
    backends that report none, such as the console and file backends of development)."""
    text, html = render(email)
    domain = parseaddr(settings.DEFAULT_FROM_EMAIL)[1].rpartition("@")[2] or "bimride.example"
    message = EmailMultiAlternatives(
        subject=email.subject,
        body=text,
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[email.to],
        headers={"Message-ID": make_msgid(domain=domain)},
    )
    message.attach_alternative(html, "text/html")
    message.tags = [email.template]  # anymail: the provider's statistics per template
    return message
