"""System checks of the job system's settings and declarations: a worker that would misbehave
refuses to start (`manage.py check`, and every `qcluster`, `runserver` and `migrate`), saying
what to fix."""

from django.conf import settings
from django.core.checks import Error, Warning, register

from bimride.jobs.engine import events, ratelimit, registry


def workers_of(queue: str) -> int:
    """Worker processes of `queue` on one host; a queue no cluster is configured for counts one.
    ALT_CLUSTERS is optional to django-q2 (plain single-cluster settings have none)."""
    if queue == settings.Q_CLUSTER["name"]:
        return settings.Q_CLUSTER["workers"]
    return settings.Q_CLUSTER.get("ALT_CLUSTERS", {}).get(queue, {}).get("workers", 1)


def connections_of(queue: str) -> int:
    """The most connections one worker process of `queue` holds at once."""
    concurrency = settings.JOB_CONCURRENCY.get(queue, 1)
    if concurrency <= 1:
        return 1
    return settings.JOB_DB_POOL_SIZE or concurrency


@register()
def concurrency_check(app_configs, **kwargs) -> list[Error]:
    errors = []
    for queue in settings.JOB_QUEUES:
        concurrency = settings.JOB_CONCURRENCY.get(queue, 1)
        if concurrency < 1:
            errors.append(
                Error(
                    f"JOB_CONCURRENCY_{queue.upper()} is {concurrency}: a worker process must run"
                    " at least one attempt at a time.",
                    hint=f"Set JOB_CONCURRENCY_{queue.upper()} to 1 or more.",
                    id="jobs.E001",
                )
            )
    if settings.JOB_DB_POOL_SIZE < 0:
        errors.append(Error("JOB_DB_POOL_SIZE cannot be negative.", id="jobs.E002"))
    needed = sum(workers_of(q) * connections_of(q) for q in settings.JOB_QUEUES)
    budget = settings.JOB_DB_CONNECTION_BUDGET
    if needed > budget:
        per_queue = ", ".join(
            f"{q}: {workers_of(q)} × {connections_of(q)}" for q in settings.JOB_QUEUES
        )
        errors.append(
            Error(
                f"The workers of one host would hold up to {needed} database connections"
                f" ({per_queue}), above JOB_DB_CONNECTION_BUDGET ({budget}).",
                hint="Lower Q_WORKERS_<QUEUE> or JOB_DB_POOL_SIZE (connections a threaded worker"
                " shares), or raise JOB_DB_CONNECTION_BUDGET if the database allows it.",
                id="jobs.E003",
            )
        )
    return errors


@register()
def rate_limits_check(app_configs, **kwargs) -> list[Error]:
    known = ratelimit.providers()
    errors = []
    for name, rate in settings.PROVIDER_RATE_LIMITS.items():
        if name not in known:
            errors.append(
                Error(
                    f"PROVIDER_RATE_LIMITS names {name!r}, which no app calls.",
                    hint=f"Providers: {', '.join(sorted(known))}.",
                    id="jobs.E004",
                )
            )
        elif rate < 0:
            errors.append(Error(f"The rate limit of {name} is negative.", id="jobs.E005"))
    return errors


@register()
def concurrency_keys_check(app_configs, **kwargs) -> list[Error]:
    errors = []
    for job_type in registry.all_types().values():
        if not job_type.concurrency_key:
            continue
        fields = set(job_type.payload().fields) if job_type.payload else set()
        missing = [f for f in job_type.key_fields() if f not in fields]
        if missing:
            errors.append(
                Error(
                    f"{job_type.name}: its concurrency key {job_type.concurrency_key!r} names"
                    f" {', '.join(missing)}, which its payload does not have.",
                    hint="Name fields of the job's payload schema in the key.",
                    id="jobs.E006",
                )
            )
    return errors


@register()
def events_check(app_configs, **kwargs) -> list[Error | Warning]:
    """Every declared event has a subscriber, and every subscription names a declared event."""
    declared = events.declared()
    found = []
    for name in sorted(set(declared) - set(registry.subscriptions())):
        found.append(
            Warning(
                f"Event {name} ({declared[name].__module__}) is published to no job.",
                hint="Subscribe a job to it (@job(..., on=...)) or remove it.",
                id="jobs.W001",
            )
        )
    for name, job_names in sorted(registry.subscriptions().items()):
        if name not in declared:
            found.append(
                Error(
                    f"{', '.join(job_names)} subscribe to {name!r}, which no app declares.",
                    hint="Declare the event (a bimride.jobs.Event in the publishing app's"
                    " events.py) and subscribe with the class itself.",
                    id="jobs.E007",
                )
            )
    return found
