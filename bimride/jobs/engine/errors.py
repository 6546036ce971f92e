"""What the job system raises, and what a handler raises to tell it something."""

import json


class JobPayloadError(ValueError):
    """A payload that does not fit its job's schema; raised at the call site, nothing stored."""

    def __init__(self, name: str, errors: dict):
        super().__init__(f"Invalid payload for {name}: {json.dumps(errors, default=str)}")
        self.errors = errors


class UnknownJob(LookupError):
    """No job type of that name is declared (or its task's module no longer imports)."""


class Snooze(Exception):  # noqa: N818 - what a handler says, not an error
    """Raised by a handler (`ctx.snooze()`): not yet, again in `seconds`. No attempt is used and
    no error recorded; the job's audit trail shows the snooze and its reason."""

    def __init__(self, seconds: float, reason: str = ""):
        super().__init__(reason or f"snoozed for {seconds:g}s")
        self.seconds, self.reason = max(0.0, float(seconds)), reason


class SnoozedTooOften(RuntimeError):
    """A job snoozed more often than its type allows: an endless wait, dead-lettered."""


class LeaseLost(RuntimeError):
    """The attempt outlived its lease and the job was handed to another worker."""


class WorkerLost(RuntimeError):
    """A worker died during an attempt (the job's lease expired)."""
