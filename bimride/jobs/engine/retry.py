"""Retry policies: exponential backoff with full jitter ("AWS full jitter")."""

import random
from dataclasses import dataclass

from django.conf import settings


@dataclass(frozen=True)
class RetryPolicy:
    max_attempts: int = 5
    initial: float = 2.0  # seconds, the cap of the first back-off
    max_delay: float = 300.0  # seconds, the cap of any back-off

    def cap(self, attempt: int) -> float:
        """The largest back-off after failed attempt number `attempt` (1-based)."""
        return min(self.max_delay, self.initial * 2 ** (attempt - 1))

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt`: uniform in [0, cap] (full jitter)."""
        return random.uniform(0, self.cap(attempt)) * settings.JOB_RETRY_SCALE


DEFAULT_RETRY = RetryPolicy()
# Email providers recover within minutes: ten attempts, at most 13½ minutes of back-off in all
# (about half that on average, with full jitter).
EMAIL_RETRY = RetryPolicy(max_attempts=10, initial=2.0, max_delay=300.0)
# Payment providers rate-limit: a gentler curve, eight attempts, at most 21 minutes of back-off.
PAYMENTS_RETRY = RetryPolicy(max_attempts=8, initial=10.0, max_delay=1800.0)
# Pushes ride out an FCM outage of up to about a quarter of an hour; one whose time to live ends
# first is given up as expired when it next runs, not dead-lettered.
PUSH_RETRY = RetryPolicy(max_attempts=10, initial=2.0, max_delay=300.0)
# Tasks of Django's Tasks API: one attempt, as the reference backends run a task, unless the
# task declares its own (`@task(retry=RetryPolicy(...))`) or its backend's OPTIONS do.
TASK_RETRY = RetryPolicy(max_attempts=1)
