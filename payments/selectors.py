"""Reads of payments for other apps."""

from payments.models import Payment, StripeCustomer
from rides.models import PromoRedemption


def payment_facts_for(*, ride_id: int) -> dict:
    """What a receipt may say about a ride's payment: the card's last four digits, the promo
    discount (minor units) and the promo code; None or 0 where unknown."""
    payment = Payment.objects.filter(ride_id=ride_id, kind=Payment.Kind.RIDE).first()
    customer = StripeCustomer.objects.filter(rider__rides=ride_id).first()
    redemption = PromoRedemption.objects.filter(ride_id=ride_id).select_related("promo").first()
    return {
        "card_last4": (customer.card_last4 or None) if customer else None,
        "discount": payment.discount if payment else 0,
        "promo_code": redemption.promo.code if redemption else None,
    }
