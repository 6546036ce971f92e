"""The one module that imports `stripe`: every call BimRide makes to Stripe, and the mapping of
Stripe's errors to ours.

Each call takes an idempotency key that the payment services derive from what it acts on
(`customer:<rider id>`, `authorize:<payment id>`, `capture:<payment id>`, `refund:<refund id>`,
`payout:<payout id>`), not from the job: every job and attempt acting on the same object sends
the same key, so a re-run (a crash, a timeout, a duplicate delivery, a second job for the same
ride, a retried dead letter) is answered with Stripe's stored first response instead of acting
twice. Only a payout whose transfer Stripe refused, and that finds no transfer made, tries again
under a new key (`payout:<payout id>:<failures>`).

Calls return plain dicts. A declined card and a request Stripe refuses are `PermanentError`s
(dead-lettered at once); connection errors, timeouts and 5xx are `StripeUnavailable` (retried
with the payments retry policy). The SDK never retries on its own: the job system does. Each call
takes a token from Stripe's rate-limit budget first (`PROVIDER_RATE_LIMITS`), and a 429 pauses
every job's Stripe calls for its `Retry-After`: either way the job snoozes, using no attempt. No
call is made inside a database transaction (`bimride.db.provider_call`).
"""

import functools
import json
import logging

import stripe
from django.conf import settings

from bimride.db import provider_call
from bimride.errors import PermanentError
from bimride.jobs import ratelimit

STRIPE = ratelimit.provider("stripe")

logging.getLogger("stripe").setLevel(logging.WARNING)  # the SDK logs every request at INFO


class PaymentError(PermanentError):
    """Stripe refused for good. `code` is Stripe's error code (`card_declined`, ...)."""

    code = "payment_failed"

    def __init__(self, message: str, *, code: str, decline_code: str = ""):
        super().__init__(f"{code}: {message}", code=code)
        self.stripe_message, self.decline_code = message, decline_code


class PaymentDeclined(PaymentError):
    """The card was declined."""


class PaymentRejected(PaymentError):
    """Stripe rejected the request itself (invalid parameters, unexpected state, bad key)."""


class StripeUnavailable(RuntimeError):
    """Stripe could not answer now (rate limit, network, timeout, 5xx): retry later."""


class WebhookSignatureInvalid(ValueError):
    """A webhook whose `Stripe-Signature` is missing, malformed, stale or wrong."""


@functools.lru_cache(maxsize=8)
def _client(api_key: str, api_base: str, timeout: float) -> stripe.StripeClient:
    return stripe.StripeClient(
        api_key,
        base_addresses={"api": api_base},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=timeout),
    )


def client() -> stripe.StripeClient:
    return _client(settings.STRIPE_API_KEY, settings.STRIPE_API_BASE, settings.STRIPE_TIMEOUT)


def _call(method, params: dict, key: str | None, *args) -> dict:
    options = {"idempotency_key": key} if key else {}
    ratelimit.take(STRIPE)
    provider_call("Stripe")
    try:
        result = method(*args, params=params, options=options)
    except stripe.CardError as error:
        decline = (error.json_body or {}).get("error", {}).get("decline_code") or ""
        raise PaymentDeclined(
            error.user_message or "Card declined.",
            code=error.code or "card_declined",
            decline_code=decline,
        ) from None
    except stripe.RateLimitError as error:
        raise ratelimit.pause(STRIPE, _retry_after(error.headers)) from None
    except stripe.APIConnectionError as error:
        raise StripeUnavailable(f"{type(error).__name__}: {error.user_message or error}") from None
    except (stripe.InvalidRequestError, stripe.IdempotencyError) as error:
        raise PaymentRejected(
            error.user_message or "Invalid request.", code=error.code or "invalid_request"
        ) from None
    except (stripe.AuthenticationError, stripe.PermissionError) as error:
        raise PaymentRejected(
            error.user_message or "Not allowed.", code=error.code or "authentication_error"
        ) from None
    except stripe.APIError as error:
        raise StripeUnavailable(f"Stripe {error.http_status}: {error.user_message}") from None
    return json.loads(str(result))


def _retry_after(headers) -> float | None:
    try:
        return float((headers or {}).get("Retry-After", ""))
    except ValueError:
        return None


def customer_create(*, rider_id: int, email: str, name: str, key: str) -> dict:
    params = {"email": email, "name": name, "metadata": {"rider_id": str(rider_id)}}
    return _call(client().v1.customers.create, params, key)


def payment_method_attach(*, payment_method: str, customer: str, key: str) -> dict:
    """Attach a payment method (in test mode a token such as `pm_card_visa`) to a customer."""
    return _call(client().v1.payment_methods.attach, {"customer": customer}, key, payment_method)


def intent_create(
    *,
    amount: int,
    currency: str,
    customer: str,
    payment_method: str,
    manual_capture: bool,
    metadata: dict,
    key: str,
) -> dict:
    """Create and confirm a PaymentIntent off-session: an authorisation with `manual_capture`,
    otherwise a charge."""
    params = {
        "amount": amount,
        "currency": currency,
        "customer": customer,
        "payment_method": payment_method,
        "capture_method": "manual" if manual_capture else "automatic",
        "confirm": True,
        "off_session": True,
        "metadata": {k: str(v) for k, v in metadata.items()},
    }
    return _call(client().v1.payment_intents.create, params, key)


def intent_capture(*, intent_id: str, amount: int, key: str) -> dict:
    """Capture `amount` (at most the authorised amount; the rest is released)."""
    return _call(client().v1.payment_intents.capture, {"amount_to_capture": amount}, key, intent_id)


def intent_cancel(*, intent_id: str, key: str) -> dict:
    """Release an uncaptured authorisation."""
    return _call(client().v1.payment_intents.cancel, {}, key, intent_id)


def refund_create(*, intent_id: str, amount: int, key: str) -> dict:
    params = {"payment_intent": intent_id, "amount": amount}
    return _call(client().v1.refunds.create, params, key)


def account_create(*, driver_id: int, email: str, country: str, key: str) -> dict:
    """A connected (Express) account for a driver, able to receive transfers."""
    params = {
        "type": "express",
        "country": country,
        "email": email,
        "capabilities": {"transfers": {"requested": True}},
        "metadata": {"driver_id": str(driver_id)},
    }
    return _call(client().v1.accounts.create, params, key)


def transfer_create(
    *, amount: int, currency: str, destination: str, group: str, metadata: dict, key: str
) -> dict:
    """Move `amount` from the platform's balance to a connected account."""
    params = {
        "amount": amount,
        "currency": currency,
        "destination": destination,
        "transfer_group": group,
        "metadata": {k: str(v) for k, v in metadata.items()},
    }
    return _call(client().v1.transfers.create, params, key)


def transfer_find(*, destination: str, group: str, metadata: dict) -> dict | None:
    """The transfer to `destination` in `group` whose metadata includes `metadata`, if any."""
    params = {"destination": destination, "transfer_group": group, "limit": 100}
    page = _call(client().v1.transfers.list, params, None)
    wanted = {k: str(v) for k, v in metadata.items()}
    return next((t for t in page["data"] if wanted.items() <= t["metadata"].items()), None)


def webhook_event(*, payload: bytes, signature: str | None) -> dict:
    """The event in a webhook body, once its signature is verified with the endpoint secret."""
    try:
        stripe.WebhookSignature.verify_header(
            payload,
            signature,
            settings.STRIPE_WEBHOOK_SECRET,
            tolerance=settings.STRIPE_WEBHOOK_TOLERANCE,
        )
        event = json.loads(payload)
    except (stripe.SignatureVerificationError, ValueError, UnicodeDecodeError) as error:
        raise WebhookSignatureInvalid(str(error)) from None
    if not isinstance(event, dict) or not isinstance(event.get("id"), str):
        raise WebhookSignatureInvalid("The payload is not a Stripe event.")
    return event


def webhook_signature(*, payload: str, secret: str | None = None) -> str:
    """The `Stripe-Signature` header Stripe would send for `payload` (tests, the stand-in)."""
    return stripe.WebhookSignature.generate_signature_header(
        payload, secret or settings.STRIPE_WEBHOOK_SECRET
    )
