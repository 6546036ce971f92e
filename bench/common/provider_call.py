"""The provider call of `make bench-providers`' job: one Stripe SDK request to the Stripe
stand-in, the same for our job handler (`bench.common.jobtypes`) and the Celery task
(`bench.common.celery_app`), neither of which needs Django for it.

The stand-in is STRIPE_API_BASE (answering STRIPE_STANDIN_LATENCY seconds late); the client is
made once per process and shared by its threads, as `payments.stripe_client`'s is (the SDK's
requests client keeps one HTTP session per thread)."""

import functools
import os

import stripe

API_KEY = "sk_test_bench"
PROVIDER_JOB = "bench.stripe_wait"  # its job type, on the payments' queue
PROVIDER_QUEUE = "critical"


def client() -> stripe.StripeClient:
    return _client(os.environ["STRIPE_API_BASE"])


@functools.cache
def _client(base: str) -> stripe.StripeClient:
    return stripe.StripeClient(
        API_KEY,
        base_addresses={"api": base},
        max_network_retries=0,
        http_client=stripe.RequestsClient(timeout=20),
    )


def intent_create() -> str:
    """A PaymentIntent to read back; its id."""
    params = {"amount": 1200, "currency": "eur", "capture_method": "manual"}
    return client().v1.payment_intents.create(params=params).id


def intent_retrieve(intent_id: str) -> str:
    """The handler's body: read the PaymentIntent from Stripe; its status."""
    return client().v1.payment_intents.retrieve(intent_id).status
