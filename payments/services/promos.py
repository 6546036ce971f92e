"""Promo codes: redeemed at ride request, reflected in the authorised and captured amounts."""

from django.db import transaction
from django.utils import timezone

from bimride.errors import ValidationError
from payments.models import (
    PromoCode,
    PromoRedemption,
)
from rides.models import Ride


# --- promo codes --------------------------------------------------------------------------------
def promo_redeem(*, code: str, ride: Ride) -> PromoRedemption:
    """Redeem `code` for a ride being requested (call inside the request's transaction); an
    unknown, expired or used-up code raises ValidationError on `promo_code`."""
    promo = PromoCode.objects.select_for_update().filter(code=code.strip().upper()).first()

    def refuse(message: str):
        return ValidationError(message, code="invalid_promo_code", fields={"promo_code": [message]})

    if promo is None or not promo.active:
        raise refuse("Unknown promo code.")
    if promo.expires_at is not None and promo.expires_at <= timezone.now():
        raise refuse("This promo code has expired.")
    if promo.usage_limit is not None and promo.times_used >= promo.usage_limit:
        raise refuse("This promo code has been used up.")
    if promo.kind == PromoCode.Kind.FIXED and promo.currency != ride.currency:
        raise refuse("This promo code is not valid in this currency.")
    promo.times_used += 1
    promo.save(update_fields=["times_used"])
    return PromoRedemption.objects.create(promo=promo, ride=ride, rider=ride.rider)


def discounted(ride: Ride, amount: int) -> tuple[int, int]:
    """(amount after the ride's promo, discount)."""
    redemption = PromoRedemption.objects.filter(ride=ride).select_related("promo").first()
    discount = redemption.promo.discount_on(amount) if redemption else 0
    return amount - discount, discount


@transaction.atomic
def promo_expire() -> int:
    """Deactivate codes past their expiry; returns how many."""
    return PromoCode.objects.filter(active=True, expires_at__lte=timezone.now()).update(
        active=False
    )
