"""Reads of jobs: who may see which job, and the numbers of the queues."""

from collections.abc import Callable
from datetime import timedelta
from uuid import UUID

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection
from django.db.models import Count
from django.utils import timezone

from bimride.errors import NotFound
from bimride.jobs.engine.plans import custom_plans
from bimride.jobs.models import LIVE_STATES, DeadLetter, Job

# subject kind -> whether a user may see that subject: apps register theirs in ready().
_subjects: dict[str, Callable[[AbstractBaseUser, int], bool]] = {
    "user": lambda user, pk: user.pk == pk,
}


def register_subject(kind: str, visible: Callable[[AbstractBaseUser, int], bool]) -> None:
    _subjects[kind] = visible


def _visible(user: AbstractBaseUser, subject: str) -> bool:
    kind, _, pk = subject.partition(":")
    check = _subjects.get(kind)
    return bool(check and pk.isdigit() and check(user, int(pk)))


def job_get_for(
    *, user: AbstractBaseUser, job_id: int | None = None, job_uid: UUID | None = None
) -> Job:
    """The job with id `job_id` (or opaque id `job_uid`), if `user` is staff or may see the
    job's subject; otherwise NotFound."""
    job = Job.objects.filter(**({"uid": job_uid} if job_id is None else {"pk": job_id})).first()
    if job is not None and (user.is_staff or _visible(user, job.subject)):
        return job
    raise NotFound("No such job.")


def job_summaries_of(*, subjects: list[str]) -> dict[str, list[dict]]:
    """Each subject's jobs, oldest first, as `{id, name, state}`: one query for all of them."""
    summaries = {subject: [] for subject in subjects}
    rows = Job.objects.filter(subject__in=subjects).order_by("id")
    for subject, pk, name, state in rows.values_list("subject", "id", "name", "state"):
        summaries[subject].append({"id": pk, "name": name, "state": state})
    return summaries


DEPTH_CAP = 10_000  # waiting or running jobs counted per queue and state; above, an estimate


def queue_stats() -> list[dict]:
    """Per queue: jobs by state, oldest due-but-waiting age (lag), last hour's throughput,
    running jobs and open dead letters. Each count reads an index of the live jobs or of the
    last hour's finished ones, never the whole ledger; a depth above DEPTH_CAP is PostgreSQL's
    estimate, and its state is listed in `depth_estimated`."""
    with custom_plans():
        return _queue_stats()


def _depth(queue: str, state: str) -> tuple[int, bool]:
    """Jobs of `queue` in `state`, counted up to DEPTH_CAP; above it, the planner's estimate
    (and False: not exact). Counting a backlog of millions would read millions of entries."""
    rows = Job.objects.filter(queue=queue, state=state).order_by()
    counted = rows[: DEPTH_CAP + 1].count()
    if counted <= DEPTH_CAP:
        return counted, True
    query, params = rows.values("id").query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN (FORMAT JSON) {query}", params)
        plan = cursor.fetchone()[0]
    return max(int(plan[0]["Plan"]["Plan Rows"]), counted), False


def _queue_stats() -> list[dict]:
    now = timezone.now()
    hour_ago = now - timedelta(hours=1)
    finished = (
        Job.objects.filter(finished_at__gte=hour_ago)
        .values("queue", "state")
        .annotate(n=Count("id"))
    )
    dead = dict(
        DeadLetter.objects.filter(resolution="")
        .values("queue")
        .annotate(n=Count("id"))
        .values_list("queue", "n")
    )
    stats = {
        q: {
            "queue": q,
            "depth": dict.fromkeys(LIVE_STATES, 0),
            "depth_estimated": [],
            "lag_seconds": 0.0,
            "succeeded_last_hour": 0,
            "dead_last_hour": 0,
            "dead_letters_open": dead.get(q, 0),
        }
        for q in settings.JOB_QUEUES
    }
    for queue, state in ((q, s) for q in settings.JOB_QUEUES for s in LIVE_STATES):
        n, exact = _depth(queue, state)
        stats[queue]["depth"][state] = n
        if not exact:
            stats[queue]["depth_estimated"].append(state)
    for queue, lag in queue_lags().items():
        if queue in stats:
            stats[queue]["lag_seconds"] = lag
    for row in finished:
        if row["queue"] in stats and row["state"] in ("succeeded", "dead"):
            stats[row["queue"]][f"{row['state']}_last_hour"] = row["n"]
    return list(stats.values())


# The oldest due job of each queue and waiting state: one probe of job_live_idx each, however
# long the backlog (the states are literals, so the planner can use the partial index).
_OLDEST = (
    " LEFT JOIN LATERAL (SELECT run_at FROM jobs_job WHERE state = '{0}' AND queue = q"
    " AND run_at <= %s ORDER BY run_at LIMIT 1) AS {0} ON true"
)
_OLDEST_DUE = (
    "SELECT q, least(queued.run_at, retrying.run_at) FROM unnest(%s::text[]) AS q"
    + _OLDEST.format("queued")
    + _OLDEST.format("retrying")
)


def queue_lags() -> dict[str, float]:
    """Seconds the oldest due job of each queue has been waiting (0 for an idle queue)."""
    now = timezone.now()
    with connection.cursor() as cursor:
        cursor.execute(_OLDEST_DUE, [list(settings.JOB_QUEUES), now, now])
        rows = [(queue, first) for queue, first in cursor.fetchall() if first is not None]
    lags = dict.fromkeys(settings.JOB_QUEUES, 0.0)
    lags.update({queue: round((now - first).total_seconds(), 3) for queue, first in rows})
    return lags


def throughput(*, minutes: int = 60, bucket: int = 5) -> dict[str, list[int]]:
    """Jobs finished per queue in each `bucket`-minute slot of the last `minutes`, oldest first."""
    now = timezone.now()
    slots = minutes // bucket
    series = {q: [0] * slots for q in settings.JOB_QUEUES}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT queue, floor(extract(epoch FROM %s - finished_at) / %s)::int, count(*)"
            f" FROM {Job._meta.db_table} WHERE finished_at >= %s GROUP BY 1, 2",
            [now, bucket * 60, now - timedelta(minutes=minutes)],
        )
        for queue, age, n in cursor.fetchall():
            if queue in series and 0 <= age < slots:
                series[queue][slots - 1 - age] = n
    return series


def deadletters_by_type() -> list[dict]:
    """Open dead letters per job type, most first."""
    return list(
        DeadLetter.objects.filter(resolution="")
        .values("name", "queue")
        .annotate(n=Count("id"))
        .order_by("-n", "name")
    )


def running_jobs(limit: int = 50) -> list[Job]:
    with custom_plans():  # job_running_idx
        return list(Job.objects.filter(state=Job.State.RUNNING).order_by("started_at")[:limit])


def deadletter_list(*, status: str = "open"):
    letters = DeadLetter.objects.select_related("job", "retry_job", "resolved_by")
    if status == "open":
        return letters.filter(resolution="")
    if status == "resolved":
        return letters.exclude(resolution="")
    return letters
