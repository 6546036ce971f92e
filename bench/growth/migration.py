"""How long jobs migration 0006 takes on the ledger `make bench-growth` leaves, and whether it
blocks the job path meanwhile: it is reversed to 0005, then applied again while another thread
enqueues a job every 10 ms and records how long each took.

Usage (after `make bench-growth`, which leaves `bimride_bench` filled):
``flock /tmp/bimride-bench.lock .venv/bin/python -m bench.growth.migration`` with DATABASE_URL set
to the server (`make db-start` prints it). It prints the timings; it writes no result file.
"""

import os
import threading
import time

import django

from bench.common.runs import BENCH_DB, log, with_database
from bench.jobs.suites import percentile

TARGET, PREVIOUS = "0006_ledger_at_scale", "0005_task_priority_and_errors"


def enqueue_while(stop: threading.Event, latencies: list[float]) -> None:
    from django.db import connection

    from bench.jobs.systems import Ours

    system = Ours()
    while not stop.is_set():
        t = time.perf_counter()
        system.request_enqueue(0)
        latencies.append((time.perf_counter() - t) * 1000)
        time.sleep(0.01)
    connection.close()


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

    from bench.jobs.systems import sql

    rows = sql("SELECT reltuples::bigint FROM pg_class WHERE relname = 'jobs_job'")[0][0]
    events = sql("SELECT reltuples::bigint FROM pg_class WHERE relname = 'jobs_jobevent'")[0][0]
    log(f"about {rows:,} jobs and {events:,} audit rows")
    t = time.monotonic()
    call_command("migrate", "jobs", PREVIOUS, verbosity=0)
    log(f"reversed to {PREVIOUS} in {time.monotonic() - t:.1f} s")
    first = sql("SELECT coalesce(max(id), 0) FROM jobs_job")[0][0]
    stop, latencies = threading.Event(), []
    writer = threading.Thread(target=enqueue_while, args=(stop, latencies))
    writer.start()
    t = time.monotonic()
    try:
        call_command("migrate", "jobs", TARGET, verbosity=0)
    finally:
        took = time.monotonic() - t
        stop.set()
        writer.join()
    log(
        f"applied {TARGET} in {took:.1f} s; meanwhile {len(latencies)} enqueues, p50"
        f" {percentile(latencies, 50):.1f} ms, p99 {percentile(latencies, 99):.1f} ms,"
        f" longest {max(latencies):.0f} ms"
    )
    sql("DELETE FROM django_q_ormq")
    sql("DELETE FROM jobs_jobevent WHERE job_id > %s", [first])
    sql("DELETE FROM jobs_job WHERE id > %s", [first])


if __name__ == "__main__":
    main()
