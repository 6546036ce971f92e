"""Providers' rate limits, shared by every worker on every host through PostgreSQL.

An app declares each provider it calls (`provider("stripe")`); `PROVIDER_RATE_LIMITS` sets a
budget in requests per second (0: none). Before each call the app takes a token (`take`): a
token bucket per provider, one row of `ProviderBudget`, refilled at the rate and holding at most
a second's worth. A job over budget snoozes (`Snooze`: no attempt used) until a token is due.
When the provider itself answers "too many requests", `pause` stops every job's calls to it for
the time it asked (its `Retry-After`), again by snoozing.
"""

from datetime import timedelta

from django.conf import settings
from django.db import connection
from django.utils import timezone

from bimride.jobs.engine import metrics
from bimride.jobs.engine.errors import Snooze
from bimride.jobs.models import ProviderBudget

DEFAULT_PAUSE = 1.0  # seconds, when a 429 says no Retry-After
_providers: set[str] = set()

_TABLE = ProviderBudget._meta.db_table
# Refill the bucket for the time since its last refill, then take a token if there is a whole
# one and the provider is not paused. Answers the refilled tokens before the take and the pause.
_TAKE = f"""
WITH bucket AS (
    SELECT name, paused_until, LEAST(%(rate)s, tokens
        + EXTRACT(EPOCH FROM clock_timestamp() - refreshed_at) * %(rate)s) AS refilled
    FROM {_TABLE} WHERE name = %(name)s FOR UPDATE
)
UPDATE {_TABLE} b SET refreshed_at = clock_timestamp(), tokens = CASE
    WHEN bucket.refilled >= 1 AND coalesce(b.paused_until <= clock_timestamp(), true)
    THEN bucket.refilled - 1 ELSE bucket.refilled END
FROM bucket WHERE b.name = bucket.name
RETURNING bucket.refilled, EXTRACT(EPOCH FROM b.paused_until - clock_timestamp())
"""


class ProviderBusy(Snooze):  # noqa: N818 - a snooze, not an error
    """Over the provider's budget, or the provider asked for a pause: again in `seconds`."""


def provider(name: str) -> str:
    """Declare a provider an app calls; returns its name, for `take` and `pause`."""
    _providers.add(name)
    return name


def providers() -> set[str]:
    return set(_providers)


def take(name: str) -> None:
    """Take one call from `name`'s budget, or raise ProviderBusy saying when to try again."""
    rate = settings.PROVIDER_RATE_LIMITS.get(name, 0)
    paused = _paused_for(name) if not rate else None
    if rate:
        ProviderBudget.objects.get_or_create(name=name, defaults={"tokens": rate})
        with connection.cursor() as cursor:
            cursor.execute(_TAKE, {"name": name, "rate": float(rate)})
            refilled, paused = cursor.fetchone()
        if paused is None or paused <= 0:
            if refilled >= 1:
                return
            metrics.RATE_LIMITED.labels(name, "budget").inc()
            raise ProviderBusy((1 - refilled) / rate, f"{name}: over its {rate:g}/s budget")
    if paused is not None and paused > 0:
        metrics.RATE_LIMITED.labels(name, "paused").inc()
        raise ProviderBusy(float(paused), f"{name}: paused after its 429")


def _paused_for(name: str) -> float | None:
    until = ProviderBudget.objects.filter(name=name).values_list("paused_until", flat=True).first()
    return None if until is None else (until - timezone.now()).total_seconds()


def pause(name: str, seconds: float | None) -> ProviderBusy:
    """Record that `name` asked for a pause of `seconds` (its Retry-After) and return the
    ProviderBusy for the caller to raise: every job calling it snoozes until then."""
    seconds = DEFAULT_PAUSE if seconds is None or seconds <= 0 else float(seconds)
    until = timezone.now() + timedelta(seconds=seconds)
    budget, created = ProviderBudget.objects.get_or_create(
        name=name, defaults={"paused_until": until}
    )
    if not created and (budget.paused_until is None or budget.paused_until < until):
        ProviderBudget.objects.filter(name=name).update(paused_until=until)
    metrics.RATE_LIMITED.labels(name, "429").inc()
    return ProviderBusy(seconds, f"{name} answered 429: paused for {seconds:g}s")
