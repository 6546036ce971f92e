"""Reads of payments: for the staff API and for other apps."""

from bimride.errors import NotFound
from bimride.jobs import Job
from payments.models import Payment, Refund, StripeCustomer


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


def card_last4_of(*, rider_id: int) -> str | None:
    """The last four digits of the rider's saved card, None where unknown."""
    customer = StripeCustomer.objects.filter(rider_id=rider_id).only("card_last4").first()
    return (customer.card_last4 or None) if customer else None
