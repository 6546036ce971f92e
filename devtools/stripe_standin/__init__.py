"""A local stand-in for the part of Stripe's API BimRide uses (see `server.py`)."""

from devtools.stripe_standin.server import KINDS, StripeStandin, StripeStandinError, main

__all__ = ["KINDS", "StripeStandin", "StripeStandinError", "main"]
