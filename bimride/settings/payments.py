"""Payments: Stripe (through its SDK, or the local stand-in in development), cancellation fees
and the drivers' weekly payouts."""

from datetime import timedelta

from django.core.exceptions import ImproperlyConfigured

from bimride.settings.env import PRODUCTION, env

# Stripe through the real SDK. Without STRIPE_API_KEY, the local stand-in
# (devtools/stripe_standin/, started by `make run`) answers on STRIPE_API_BASE; with the key
# set, the same code talks to Stripe itself.
_STRIPE_KEY = env.str("STRIPE_API_KEY", "")
STRIPE_USES_STANDIN = not _STRIPE_KEY
STRIPE_API_KEY = _STRIPE_KEY or "sk_test_standin"
STRIPE_API_BASE = env.str(
    "STRIPE_API_BASE", "https://api.stripe.com" if _STRIPE_KEY else "http://127.0.0.1:12111"
)
# The stand-in's signing secret: public, so `check --deploy` warns while it is in use.
STRIPE_WEBHOOK_DEVELOPMENT_SECRET = "whsec_dev_standin_secret"  # noqa: S105
STRIPE_WEBHOOK_SECRET = env.str("STRIPE_WEBHOOK_SECRET", STRIPE_WEBHOOK_DEVELOPMENT_SECRET)
if PRODUCTION and not (_STRIPE_KEY and env.str("STRIPE_WEBHOOK_SECRET", "")):
    raise ImproperlyConfigured(
        "DJANGO_ENV=production needs STRIPE_API_KEY and STRIPE_WEBHOOK_SECRET."
    )
STRIPE_WEBHOOK_TOLERANCE = env.int("STRIPE_WEBHOOK_TOLERANCE", 300)  # seconds
STRIPE_TIMEOUT = env.float("STRIPE_TIMEOUT", 20.0)  # seconds; below the payment jobs' 30 s
# The card each rider's customer gets (a Stripe test token; no card number is ever stored).
STRIPE_TEST_PAYMENT_METHOD = env.str("STRIPE_TEST_PAYMENT_METHOD", "pm_card_visa")
CANCELLATION_FEE = env.int("CANCELLATION_FEE", 500)  # minor units of FARE_CURRENCY
CANCELLATION_GRACE_SECONDS = env.int("CANCELLATION_GRACE_SECONDS", 120)
CANCELLATION_FEE_DELAY = timedelta(seconds=env.int("CANCELLATION_FEE_DELAY_SECONDS", 60))
# Weekly incentive: PAYOUT_PER_RIDE for each completed ride of a driver with at least
# PAYOUT_MIN_RIDES completed rides in the ISO week.
PAYOUT_MIN_RIDES = env.int("PAYOUT_MIN_RIDES", 10)
PAYOUT_PER_RIDE = env.int("PAYOUT_PER_RIDE", 100)
# Payouts are Stripe transfers to each driver's connected (Express) account in this country.
STRIPE_CONNECT_COUNTRY = env.str("STRIPE_CONNECT_COUNTRY", "US")
