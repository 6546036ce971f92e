"""Every write to payments. A Stripe call never runs inside a transaction that holds rows: each
flow reads and decides (rows locked), calls Stripe with a key derived from the payment
(`capture:<payment id>`), then records the answer (rows locked again, state checked again). A
re-run after a crash between the call and the record is answered by Stripe's stored response.

Statuses only move forward (`RANK`): a late or replayed webhook never undoes a newer state.
"""

from payments.services.charges import (
    AuthorizationPending,
    NothingToCapture,
    cancellation_fee_charge,
    customer_for,
    payment_authorize,
    payment_capture,
    payment_release,
)
from payments.services.payouts import (
    account_for,
    payout_drivers,
    payout_fail,
    payout_pay,
    payout_week_of,
)
from payments.services.refunds import (
    payment_refundable,
    refund_fail,
    refund_request,
    refund_run,
)
from payments.services.state import RANK, payment_advance, payment_fail, payment_settle
from payments.services.webhooks import webhook_process, webhook_receive

__all__ = [
    "RANK",
    "AuthorizationPending",
    "NothingToCapture",
    "account_for",
    "cancellation_fee_charge",
    "customer_for",
    "payment_advance",
    "payment_authorize",
    "payment_capture",
    "payment_fail",
    "payment_settle",
    "payment_refundable",
    "payment_release",
    "payout_drivers",
    "payout_fail",
    "payout_pay",
    "payout_week_of",
    "refund_fail",
    "refund_request",
    "refund_run",
    "webhook_process",
    "webhook_receive",
]
