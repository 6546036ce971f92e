"""Reads of payments: for the staff API and for other apps."""

from bimride.errors import NotFound
from bimride.jobs.models import Job
from payments.models import Payment, Refund, StripeCustomer
from rides.models import PromoRedemption


def payment_get(*, payment_id: int) -> Payment:
    """The payment with its events and refunds, each refund's job attached (`refund.job`, None
    if it has none): three queries, however many refunds."""
    payment = Payment.objects.prefetch_related("events", "refunds").filter(pk=payment_id).first()
    if payment is None:
        raise NotFound("No such payment.")
    refund_jobs_attach(payment.refunds.all())
    return payment


def refund_jobs_attach(refunds: list[Refund]) -> None:
    """Set `refund.job` on each refund: the job that makes it (one query for all)."""
    keys = {f"refund:{refund.pk}": refund for refund in refunds}
    for refund in keys.values():
        refund.job = None
    for job in Job.objects.filter(idempotency_key__in=keys).only(
        "id", "name", "state", "idempotency_key"
    ):
        keys[job.idempotency_key].job = job


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
