"""What happens to a ride's money, published by payments' services in their transactions."""

from bimride.jobs import Event, Id


class PaymentSettled(Event, name="payment.settled"):
    """The completed ride's total due has been taken (or nothing was due): its receipt follows."""

    ride_id: Id


class PaymentFailed(Event, name="payment.failed"):
    """A payment of the ride failed for good: the rider is told."""

    ride_id: Id
    payment_id: Id
    amount: int  # minor units
    currency: str
    reason: str = ""


class RefundSucceeded(Event, name="refund.succeeded"):
    """Stripe refunded (part of) a ride's payment."""

    ride_id: Id
    refund_id: Id
    amount: int  # minor units
    currency: str
