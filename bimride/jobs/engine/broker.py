"""Pushing jobs to django-q2 and pulling them: its broker rows carry job ids, nothing else.

A job's django-q2 ORM-broker row is written by the statement that writes the job (`pushing`),
so it commits with it; it is invisible until the job is due (its `lock` is the due time), and a
NOTIFY at commit wakes the queue's idle pushers. `PostgresBroker` is the broker the
`qcluster` processes pull with: one statement claims a batch with SKIP LOCKED, highest priority
first and then in due order, and an idle pusher waits on LISTEN (bounded by the next due time)
instead of sleeping a poll interval.
"""

import contextlib
import json
import logging
import time
import uuid
from datetime import timedelta

import psycopg
from django.conf import settings
from django.db import DatabaseError, connection
from django.utils import timezone

from bimride.jobs.engine import metrics
from bimride.jobs.engine.q2compat import (
    ORM,
    Conf,
    OrmQ,
    Schedule,
    SignedPackage,
    Task,
    TimeoutException,
)

logger = logging.getLogger(__name__)

RUN_JOB = "bimride.jobs.engine.runner.deliver"
# What older releases named it, as their task results still say.
RUNS_JOB = (RUN_JOB, "bimride.jobs.runner.deliver", "bimride.jobs.runner.run_job")
QUEUE_TABLE = OrmQ._meta.db_table
WorkerTimeout = TimeoutException  # raised in a worker when an attempt outlives its timeout


def channel(queue: str) -> str:
    return f"bimride_jobs_{queue}"


def is_job_row(payload: str) -> bool:
    """Whether a broker row is a job's (JSON, written in SQL by `pushing`) rather than a
    django-q2 task package (django-q2's own rows, such as the scheduler's)."""
    return payload.startswith("{")


def job_task(payload: str, row_id: int | None = None) -> dict:
    """The django-q2 task a job's broker row stands for, but for its id and start time, which a
    pusher sets when it takes the row; taken as row `row_id`, the worker's claim deletes that
    row. Raises ValueError, KeyError or TypeError on a bad row."""
    job = json.loads(payload)
    job_id = job["job"]
    return {
        "name": f"{job['name']}#{job_id}",
        "func": RUN_JOB,
        "args": (job_id,),
        "kwargs": {} if row_id is None else {"broker_row": row_id},
        # django-q2's own limit for the whole attempt: the job's time limit plus the time the
        # runner may wait for the database before the claim and after the handler.
        "timeout": job["timeout"] + 2 * settings.JOB_DB_OUTAGE_PATIENCE,
    }


# The acknowledgement id of a job's broker row: the worker's claim deletes the row, in the same
# statement, so the monitor's acknowledgement has nothing left to do.
CLAIMED = "claimed:"


def taken(row_id: int, payload: str) -> tuple[int | str, str]:
    """What a pusher hands django-q2 for a broker row it took: the acknowledgement id and the
    task package. A job's row holds only the job; its package is made now, naming the row for
    the claim to delete. Other rows hold a package already, acknowledged by their id."""
    if not is_job_row(payload):
        return row_id, payload
    task = {"id": uuid.uuid4().hex, **job_task(payload, row_id), "started": timezone.now()}
    return f"{CLAIMED}{row_id}", SignedPackage.dumps(task)


def job_of(payload: str) -> int | None:
    """The id of the job a broker row carries (a job's row, or a package of `run_job` pushed by
    an older release), or None for django-q2's own rows."""
    task = job_task(payload) if is_job_row(payload) else SignedPackage.loads(payload)
    return task["args"][0] if task.get("func") in RUNS_JOB else None


def pushing(rows: str) -> str:
    """A statement that runs the CTEs `rows` (one named `rows`, yielding jobs' id, queue, name,
    timeout, run_at and priority) and pushes every job it yields: a broker row each, invisible
    until the job is due (its `lock`), claimed before lower priorities (the broker row's
    `priority`, a column BimRide adds to django-q2's table), and a NOTIFY to its queue, sent at
    commit (once per queue). It answers a row per job pushed, the job's id first, and takes the
    parameters of `rows`."""
    return (
        f"WITH {rows}, pushed AS (INSERT INTO {QUEUE_TABLE} (key, payload, lock, priority)"
        f" SELECT queue, json_build_object('job', id, 'name', name, 'timeout', timeout)::text,"
        f" run_at, priority FROM rows)"
        f" SELECT id, pg_notify('{channel('')}' || queue, '') FROM rows"
    )


def push(jobs) -> None:
    """Push `jobs` (Job rows whose state is committed or in this transaction) again: mark them
    dispatched and hand them to their queues, in one statement however many. For the relay,
    retries and early deliveries; a new job is pushed by the statement that creates it."""
    from bimride.jobs.models import Job

    if not jobs:
        return
    with connection.cursor() as cursor:
        cursor.execute(
            pushing(
                f"rows AS (UPDATE {Job._meta.db_table} SET dispatched_at = now()"
                f" WHERE id = ANY(%s::bigint[])"
                f" RETURNING id, queue, name, timeout, run_at, priority)"
            ),
            [[job.pk for job in jobs]],
        )


_said_pickup_mode = False


def _say_pickup_mode(queue: str) -> None:
    """Log once per process how this queue's idle pusher learns of new jobs."""
    global _said_pickup_mode
    if _said_pickup_mode:
        return
    _said_pickup_mode = True
    if settings.JOB_PICKUP == "poll":
        logger.warning(
            "broker: queue %s polls every %.2fs for new jobs: behind a transaction-mode pooler"
            " a LISTEN needs JOB_LISTEN_DATABASE_URL, a direct connection",
            queue,
            Conf.POLL,
        )
    else:
        where = "JOB_LISTEN_DATABASE_URL" if settings.DB_TRANSACTION_POOLER else "DATABASE_URL"
        logger.info("broker: queue %s waits for new jobs on LISTEN (%s)", queue, where)


def _db_error(what: str) -> None:
    logger.warning("broker: database unavailable during %s; retrying", what, exc_info=True)
    connection.close()
    time.sleep(1)


# A batch of due rows, highest priority first, then earliest due, handed out in that order; and
# in the same statement, the seconds until the queue's next row is due (the rows just taken
# aside), by which an idle wait is bounded. No row taken: one row of NULLs but that.
_DEQUEUE = (
    f"WITH due AS (SELECT id, priority, lock FROM {QUEUE_TABLE} WHERE key = %(key)s"
    f" AND lock <= now() ORDER BY priority DESC, lock LIMIT %(bulk)s FOR UPDATE SKIP LOCKED),"
    f" taken AS (UPDATE {QUEUE_TABLE} q SET lock = now() + make_interval(secs => %(retry)s)"
    f" FROM due WHERE q.id = due.id RETURNING q.id, q.payload),"
    f" next AS (SELECT EXTRACT(EPOCH FROM min(lock) - now()) AS due_in FROM {QUEUE_TABLE}"
    f" WHERE key = %(key)s AND id NOT IN (SELECT id FROM due))"
    f" SELECT taken.id, taken.payload, next.due_in FROM next"
    f" LEFT JOIN (taken JOIN due USING (id)) ON true ORDER BY due.priority DESC, due.lock"
)


class PostgresBroker(ORM):
    """django-q2's ORM broker with priority and due-time order, SKIP LOCKED batches and
    LISTEN/NOTIFY. A take of fewer rows than a batch left nothing due: the next take waits
    first, so a pusher woken for one job sends one statement, not a second, empty take."""

    _listener = None
    _wait_first = None  # after a partial take: the monotonic time of the next due row, or None

    def __setstate__(self, state):
        super().__setstate__(state)
        self._listener = self._wait_first = None

    def dequeue(self):
        _say_pickup_mode(self.list_key)
        try:
            # Listening before the take, so that a NOTIFY sent after it is heard.
            if settings.JOB_PICKUP == "listen":
                with contextlib.suppress(psycopg.Error):  # unreachable: the wait below reports it
                    self._listen()
            if self._wait_first is not None:
                next_due, self._wait_first = self._wait_first, None
                self._wait(next_due - time.monotonic())
            with connection.cursor() as cursor:
                params = {"key": self.list_key, "bulk": Conf.BULK, "retry": Conf.RETRY}
                cursor.execute(_DEQUEUE, params)
                rows = cursor.fetchall()
            due_in = None if rows[0][2] is None else float(rows[0][2])
            tasks = [taken(row_id, payload) for row_id, payload, _ in rows if row_id is not None]
            if len(tasks) == Conf.BULK:
                return tasks  # perhaps more are due: take again at once
            if tasks:
                self._wait_first = time.monotonic() + (Conf.POLL if due_in is None else due_in)
                return tasks
            self._wait(due_in)
        except (DatabaseError, psycopg.Error):  # the listener's errors are psycopg's own
            self._drop_listener()
            _db_error("dequeue")
        return None

    def _wait(self, next_due: float | None) -> None:
        """Sleep until NOTIFY, the next due row (`next_due` seconds from now, None: no row), or
        the poll interval, whichever comes first."""
        due = next_due is not None and next_due < Conf.POLL
        timeout = max(next_due, 0.005) if due else Conf.POLL
        if settings.JOB_PICKUP == "poll":
            time.sleep(timeout)
            ended_by = "due" if due else "poll"
        else:
            notified = any(True for _ in self._listen().notifies(timeout=timeout, stop_after=1))
            ended_by = "notify" if notified else "due" if due else "poll"
        metrics.IDLE_WAITS.labels(self.list_key, ended_by).inc()

    def _listen(self):
        if self._listener is None or self._listener.closed:
            if settings.DB_TRANSACTION_POOLER:  # a session of its own, bypassing the pooler
                listener = psycopg.connect(
                    settings.JOB_LISTEN_DATABASE_URL,
                    autocommit=True,
                    connect_timeout=max(1, round(settings.JOB_LISTEN_CONNECT_TIMEOUT)),
                    application_name=f"bimride-listen-{self.list_key}",
                )
            else:
                listener = connection.get_new_connection(connection.get_connection_params())
                listener.autocommit = True
            listener.execute(f'LISTEN "{channel(self.list_key)}"')
            self._listener = listener
        return self._listener

    def _drop_listener(self) -> None:
        if self._listener is not None:
            with contextlib.suppress(Exception):  # already broken: we only want it gone
                self._listener.close()
            self._listener = None

    def delete(self, task_id) -> None:
        if isinstance(task_id, str) and task_id.startswith(CLAIMED):
            task_id = int(task_id.removeprefix(CLAIMED))
        while True:
            try:
                with connection.cursor() as cursor:
                    cursor.execute(f"DELETE FROM {QUEUE_TABLE} WHERE id = %s", [task_id])
                return
            except DatabaseError:
                _db_error("acknowledge")

    def acknowledge(self, task_id) -> None:
        """Delete a finished task's broker row; a job's row is gone already (its claim)."""
        if not (isinstance(task_id, str) and task_id.startswith(CLAIMED)):
            self.delete(task_id)

    def fail(self, task_id) -> None:
        self.delete(task_id)


def hand_back(row_id: int | None) -> None:
    """Make a broker row a pusher took visible again at once, for another worker to take."""
    if row_id is not None:
        with connection.cursor() as cursor:
            cursor.execute(f"UPDATE {QUEUE_TABLE} SET lock = now() WHERE id = %s", [row_id])


def sync_schedule_rows(
    wanted: dict[str, dict], *, func: str, formerly: tuple[str, ...] = ()
) -> dict[str, list[str]]:
    """Create, update and delete the django-q2 Schedule rows whose task is `func` (or one of
    its `formerly` paths, which they are moved to) so that they are exactly `wanted` ({name:
    {cron, tz, next_run}}); other rows are left alone."""
    report = {"created": [], "updated": [], "deleted": []}
    existing = {s.name: s for s in Schedule.objects.filter(func__in=(func, *formerly))}
    for name, spec in wanted.items():
        row = existing.pop(name, None)
        fields = {
            "func": func,
            "args": repr((name,)),
            "schedule_type": Schedule.CRON,
            "cron": spec["cron"],
            "repeats": -1,
            "intended_date_kwarg": "scheduled_for",
            "cluster": None,  # fired by the `default` clusters, one at a time (row lock)
        }
        if row is None:
            Schedule.objects.create(name=name, next_run=spec["next_run"], **fields)
            report["created"].append(name)
        elif any(getattr(row, k) != v for k, v in fields.items()):
            Schedule.objects.filter(pk=row.pk).update(next_run=spec["next_run"], **fields)
            report["updated"].append(name)
    for name, row in existing.items():
        row.delete()
        report["deleted"].append(name)
    return report


def set_schedule_next_run(*, name: str, next_run) -> None:
    """Correct the next run django-q2 computed in TIME_ZONE to the schedule's own zone."""
    Schedule.objects.filter(name=name).update(next_run=next_run)


def prune_task_results(*, before) -> int:
    """Delete django-q2 task result rows (successes and failures) stopped before `before`."""
    return Task.objects.filter(stopped__lt=before).delete()[0]


def release_stalled(*, after: float, waiting_states: tuple[str, ...]) -> list[int]:
    """Make broker rows visible again that a pusher took over `after` seconds ago for a job
    that never started (its cluster died holding them in memory); return those jobs' ids.
    Without this they would wait for django-q2's redelivery (`retry`, minutes)."""
    from bimride.jobs.models import Job

    retry = settings.Q_CLUSTER["retry"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT id, payload FROM {QUEUE_TABLE}"
            f" WHERE lock > now() AND lock < now() + make_interval(secs => %s)",
            [retry - after],
        )
        rows = cursor.fetchall()
    by_job = {}
    for row_id, payload in rows:
        job_id = job_of(payload)
        if job_id is not None:
            by_job[job_id] = row_id
    # A deferred job's row is also in the future (at its due time): only jobs long due count.
    due_before = timezone.now() - timedelta(seconds=after)
    stalled = list(
        Job.objects.filter(
            pk__in=by_job, state__in=waiting_states, run_at__lte=due_before
        ).values_list("pk", flat=True)
    )
    if stalled:
        with connection.cursor() as cursor:
            cursor.execute(
                f"UPDATE {QUEUE_TABLE} SET lock = now() WHERE id = ANY(%s)",
                [[by_job[job_id] for job_id in stalled]],
            )
    return stalled
