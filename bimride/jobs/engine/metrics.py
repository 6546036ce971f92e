"""Prometheus metrics of the job system.

Counters and histograms are observed where things happen (the runner, the pruner, the
scheduler) in whichever process does them, and summed across a host's processes through
prometheus-client's multiprocess mode (PROMETHEUS_MULTIPROC_DIR). Queue depth, lag, running
jobs, open dead letters and open alerts are read from the database at scrape time
(`bimride.jobs.ops.scrape`), so every host reports the same global figures.
"""

from prometheus_client import Counter, Gauge, Histogram

_SECONDS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300)

JOB_WAIT = Histogram(
    "bimride_job_wait_seconds", "Due time to start of each attempt.", ["job"], buckets=_SECONDS
)
JOB_RUN = Histogram(
    "bimride_job_run_seconds", "Run time of each attempt.", ["job"], buckets=_SECONDS
)
ATTEMPTS = Counter("bimride_job_attempts", "Attempts started.", ["job", "queue"])
SUCCEEDED = Counter("bimride_job_succeeded", "Jobs that succeeded.", ["job", "queue"])
FAILURES = Counter("bimride_job_failures", "Attempts that failed.", ["job", "queue"])
RETRIES = Counter("bimride_job_retries", "Attempts scheduled after a failure.", ["job", "queue"])
DEAD = Counter("bimride_job_dead_letters", "Jobs moved to the dead letters.", ["job", "queue"])
PRUNED = Counter("bimride_pruned", "Rows deleted by retention.", ["kind"])
SCHEDULE_RUNS = Counter("bimride_schedule_runs", "Schedule occurrences run.", ["schedule"])
IN_FLIGHT = Gauge(
    "bimride_job_in_flight",
    "Attempts running in worker threads.",
    ["queue"],
    multiprocess_mode="livesum",
)
SNOOZES = Counter("bimride_job_snoozes", "Attempts that snoozed.", ["job", "queue"])
# Claims put off because an earlier job of the same concurrency key is not finished.
KEY_WAITS = Counter("bimride_job_key_waits", "Claims put off for a concurrency key.", ["job"])
RATE_LIMITED = Counter(
    "bimride_provider_rate_limited", "Provider calls put off by a rate limit.", ["provider", "why"]
)
# ended_by: notify (a new job, LISTEN), due (a deferred job came due), poll (the poll interval)
IDLE_WAITS = Counter(
    "bimride_broker_idle_waits", "Idle waits of the queues' pushers.", ["queue", "ended_by"]
)
