"""The job system, as the apps use it. Everything an app needs is here:

    from bimride.jobs import JobContext, enqueue, job, publish

    @job("payments.capture_payment", queue="critical", on=RideCompleted, retry=PAYMENTS_RETRY)
    def capture_payment(payload: dict, ctx: JobContext) -> dict: ...

The modules behind it may move without the apps noticing (import-linter's contract "Apps use
the job system through bimride.jobs only", in pyproject.toml): `engine/` declares, stores,
pushes, claims, runs and retries jobs; `ops/` is what staff see and do (the admin, the ops API,
metrics, alerts); `tasks_backend.py` serves Django's Tasks API; `testing.py` runs a job's
handler in a test.

The names are imported on first use: Django imports this package while it loads the apps,
before the job models may be imported.
"""

from importlib import import_module

_FROM = {
    "bimride.jobs.engine.registry": ["JobContext", "job"],
    "bimride.jobs.engine.enqueue": ["enqueue", "publish"],
    "bimride.jobs.engine.events": ["Event", "Id"],
    "bimride.jobs.engine.errors": [
        "JobPayloadError",
        "LeaseLost",
        "Snooze",
        "SnoozedTooOften",
        "UnknownJob",
        "WorkerLost",
    ],
    "bimride.jobs.engine.retry": [
        "DEFAULT_RETRY",
        "EMAIL_RETRY",
        "PAYMENTS_RETRY",
        "PUSH_RETRY",
        "TASK_RETRY",
        "RetryPolicy",
    ],
    "bimride.jobs.engine.schedules": ["schedule"],
    "bimride.jobs.models": ["Job"],
    "bimride.jobs.ops.dashboard": ["panel"],
    "bimride.jobs.ops.selectors": ["job_summaries_of", "register_subject"],
    "bimride.jobs.ops.serializers": ["JobSummarySerializer"],
}
# Whole modules: providers' rate limits (`ratelimit.provider("stripe")`, `.take()`, `.pause()`).
_MODULES = {"ratelimit": "bimride.jobs.engine.ratelimit"}
_WHERE = {name: module for module, names in _FROM.items() for name in names}

__all__ = sorted([*_WHERE, *_MODULES])


def __getattr__(name: str):
    if name in _MODULES:
        value = import_module(_MODULES[name])
    elif name in _WHERE:
        value = getattr(import_module(_WHERE[name]), name)
    else:
        raise AttributeError(f"module 'bimride.jobs' has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
