"""How long jobs migration 0006 (and every jobs migration after it) takes on the ledger `make
bench-growth` leaves, and whether it blocks the job path meanwhile.

The jobs migrations are reversed to 0005 (which undoes 0007 and later too), then applied again
one at a time, 0006 first, each timed on its own, while another thread writes a job every 10 ms
and records how long each write took. A deploy migrates before the new code starts (docs/
deploying.md), so the writer is the previous release's enqueue: the rows an enqueue writes (the
job, its queued event, its broker row and the NOTIFY) in one statement, with the columns every
schema from 0005 on has; this release's `enqueue()` also fills the columns 0007 and 0008 add, so
it cannot run against the older schemas. Those writes take the same locks an enqueue takes.

Usage (after `make bench-growth`, which leaves `bimride_bench` filled):
``flock /tmp/bimride-bench.lock .venv/bin/python -m bench.growth.migration`` with DATABASE_URL set
to the server (`make db-start` prints it). It prints the timings; it writes no result file. It
leaves the database migrated to the latest migration and takes away the jobs it wrote.
"""

import os
import threading
import time

import django

from bench.common.runs import BENCH_DB, log, with_database
from bench.jobs.suites import percentile

PREVIOUS = "0005_task_priority_and_errors"  # the schema 0006 was written against


def write_while(stop: threading.Event, latencies: list[float]) -> None:
    """Write a due job every 10 ms as the previous release's enqueue did, until `stop`."""
    from django.db import connection

    from bench.growth.ledger import seed_backlog

    try:
        while not stop.is_set():
            t = time.perf_counter()
            seed_backlog(1)
            latencies.append((time.perf_counter() - t) * 1000)
            time.sleep(0.01)
    finally:
        connection.close()


def figures(latencies: list[float]) -> str:
    if not latencies:
        return "no writes"
    return (
        f"{len(latencies)} writes, p50 {percentile(latencies, 50):.1f} ms,"
        f" p99 {percentile(latencies, 99):.1f} ms, longest {max(latencies):.0f} ms"
    )


def jobs_migrations_after(previous: str) -> list[str]:
    """The jobs migrations after `previous`, in the order they apply."""
    from django.db import connection
    from django.db.migrations.loader import MigrationLoader

    graph = MigrationLoader(connection).graph
    [leaf] = graph.leaf_nodes("jobs")
    names = [name for app, name in graph.forwards_plan(leaf) if app == "jobs"]
    return names[names.index(previous) + 1 :]


def apply_timed(name: str) -> None:
    """Apply the jobs migration `name` while a job is written every 10 ms; log both."""
    from django.core.management import call_command

    stop, latencies = threading.Event(), []
    writer = threading.Thread(target=write_while, args=(stop, latencies))
    writer.start()
    t = time.monotonic()
    try:
        call_command("migrate", "jobs", name, verbosity=0)
    finally:
        took = time.monotonic() - t
        stop.set()
        writer.join()
    log(f"applied {name} in {took:.1f} s; meanwhile {figures(latencies)}")


def main() -> None:
    os.environ.update(
        {
            "DATABASE_URL": with_database(os.environ["DATABASE_URL"], BENCH_DB),
            "DJANGO_SETTINGS_MODULE": "bimride.settings",
            "JOB_EXTRA_MODULES": "bench.common.jobtypes",
            "DEBUG": "false",
        }
    )
    django.setup()
    from django.core.management import call_command

    from bench.growth.ledger import drop_from, next_id
    from bench.jobs.systems import sql

    call_command("migrate", verbosity=0)  # start from the latest schema, as a deploy does
    rows = sql("SELECT reltuples::bigint FROM pg_class WHERE relname = 'jobs_job'")[0][0]
    events = sql("SELECT reltuples::bigint FROM pg_class WHERE relname = 'jobs_jobevent'")[0][0]
    log(f"about {rows:,} jobs and {events:,} audit rows")
    steps = jobs_migrations_after(PREVIOUS)
    first = next_id()
    t = time.monotonic()
    try:
        call_command("migrate", "jobs", PREVIOUS, verbosity=0)
        log(f"reversed {', '.join(reversed(steps))} in {time.monotonic() - t:.1f} s")
        t = time.monotonic()
        for name in steps:
            apply_timed(name)
        log(f"applied {len(steps)} migrations in {time.monotonic() - t:.1f} s")
    finally:
        call_command("migrate", verbosity=0)  # the latest again, even after a failure
        drop_from(first)


if __name__ == "__main__":
    main()
