"""`make bench-capacity`: what a ride and a job cost the one PostgreSQL primary, counted.

Usage: ``python -m bench.capacity [--rides N] [--jobs N]`` with DATABASE_URL set (the Makefile
exports it). On its own database `bimride_capacity` (made anew each run) it starts one host as
deployed: a PgBouncer in transaction mode, gunicorn (2 workers) and one `qcluster` per queue
(2 workers each), with the Stripe and email stand-ins. Then, each phase between two readings
of the counters:

- idle: 20 s with nothing to do (what polling and the cron jobs cost, subtracted below);
- rides: N rides requested, accepted, started and completed through the API, and every job
  they cause (authorisation, matching, capture, receipt, ...) run to the end;
- jobs: N no-op jobs enqueued in batches and run.

Counters: statements and transactions from PgBouncer's `SHOW STATS` (every statement of web and
workers passes through it; BEGIN and COMMIT count as statements), transactions committed and
rows written from `pg_stat_database`, WAL bytes from `pg_current_wal_lsn()`, and the CPU time
of every PostgreSQL server process from /proc. Writes bench/results/capacity.md and .json.
"""

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import psycopg

from bench.common.procs import ROOT
from bench.common.runs import with_database

DB = "bimride_capacity"
RESULTS = ROOT / "bench" / "results"
TICK = os.sysconf("SC_CLK_TCK")


def log(message: str) -> None:
    print(f"capacity: {message}", flush=True)


def _stat(pid: int) -> list[str]:
    """Fields of /proc/<pid>/stat after the command name (state is [0], ppid [1])."""
    return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()


def postgres_cpu(postmaster: int) -> float:
    """CPU seconds (user + system) of the PostgreSQL server: the postmaster, its live children,
    and its exited children (which it reaped: cutime, cstime)."""
    fields = _stat(postmaster)
    ticks = sum(int(fields[i]) for i in (11, 12, 13, 14))
    for entry in os.scandir("/proc"):
        if entry.name.isdigit():
            try:
                child = _stat(int(entry.name))
            except OSError:
                continue
            if int(child[1]) == postmaster:
                ticks += int(child[11]) + int(child[12])
    return ticks / TICK


class Counters:
    def __init__(self, direct: str, pooler):
        self.direct, self.pooler = direct, pooler
        with psycopg.connect(direct) as conn:  # the server is on this machine
            self.postmaster = int(_stat(conn.info.backend_pid)[1])

    def read(self) -> dict:
        with psycopg.connect(self.direct, autocommit=True) as conn:
            conn.execute("SELECT pg_stat_force_next_flush()")
            time.sleep(1.1)  # other backends report their counters at most every second
            conn.execute("SELECT pg_stat_clear_snapshot()")
            commits, written, wal = conn.execute(
                "SELECT xact_commit, tup_inserted + tup_updated + tup_deleted,"
                " pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0')::bigint"
                " FROM pg_stat_database WHERE datname = current_database()"
            ).fetchone()
        stats = next(r for r in self.pooler.admin("SHOW STATS") if r["database"] == DB)
        found = {
            "statements": stats["total_query_count"],
            "pooler_transactions": stats["total_xact_count"],
            "commits": commits,
            "rows_written": written,
            "wal_bytes": wal,
            "postgres_cpu_s": postgres_cpu(self.postmaster),
            "t": time.monotonic(),
        }
        return {k: float(v) for k, v in found.items()}


def diff(before: dict, after: dict) -> dict:
    return {k: after[k] - before[k] for k in before}


def per(delta: dict, idle: dict, n: int) -> dict:
    """`delta` less the idle rate over its duration, per unit."""
    rate = {k: v / idle["t"] for k, v in idle.items() if k != "t"}
    out = {k: (v - rate[k] * delta["t"]) / n for k, v in delta.items() if k != "t"}
    out["seconds"] = delta["t"]
    return out


def prepare(base: str) -> str:
    admin = with_database(base, "postgres")
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {DB} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {DB}")
    url = with_database(base, DB)
    env = {**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bimride.settings"}
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env=env,
        check=True,
        timeout=300,
    )
    return url


def wait_idle(timeout: float) -> int:
    """Wait until no job is due and unfinished; return how many still are."""
    from django.db.models import Q
    from django.utils import timezone

    from bimride.jobs.models import Job

    deadline = time.monotonic() + timeout
    while True:
        due = Q(run_at__lte=timezone.now()) | Q(state__in=["running", "retrying"])
        left = Job.objects.exclude(state__in=["succeeded", "dead", "cancelled"]).filter(due)
        if not left.exists() or time.monotonic() > deadline:
            return left.count()
        time.sleep(0.5)


def actors(pairs: int, label: str) -> list[tuple]:
    from bench.reliability.http import make_actor

    return [
        (make_actor("rider", f"{label}r{i}"), make_actor("driver", f"{label}d{i}"))
        for i in range(pairs)
    ]


def ride_phase(hosts, actors: list[tuple], rides: int) -> tuple[int, int]:
    """Run the ride flow until `rides` rides completed; return (completed, jobs created)."""
    from bench.reliability.hosts import Balancer, RideLoad
    from bimride.jobs.models import Job

    first = Job.objects.order_by("-id").values_list("id", flat=True).first() or 0
    load = RideLoad(Balancer(hosts), actors)
    load.start()
    while len(load.completed) < rides and not load.broken:
        time.sleep(0.2)
    load.finish()
    if load.broken:
        raise RuntimeError(f"rides broke off: {load.broken[:3]}")
    return len(load.completed), Job.objects.filter(pk__gt=first).count()


def ping_phase(base: str, drivers: list, n: int) -> int:
    """`n` location pings, from every driver at once; then wait for the minute's fold of the
    kept pings into the heatmap (part of what a ping costs). Returns the pings answered 202."""
    import requests
    from django.utils import timezone

    from bimride.jobs.models import ScheduleRun

    answered, lock = [0], threading.Lock()

    def pinger(driver, count: int) -> None:
        session = requests.Session()
        for i in range(count):
            body = {"lat": 52.52 + (i % 50) / 1000, "lng": 13.405}
            url = base + "/api/drivers/me/location"
            if session.post(url, json=body, headers=driver.headers, timeout=30).status_code == 202:
                with lock:
                    answered[0] += 1

    threads = [
        threading.Thread(target=pinger, args=(d, n // len(drivers)), daemon=True) for d in drivers
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    done = timezone.now()
    folds = ScheduleRun.objects.filter(
        schedule="rides.fold_location_pings", intended_at__gt=done, job__state="succeeded"
    )
    deadline = time.monotonic() + 90
    while not folds.exists() and time.monotonic() < deadline:
        time.sleep(1)
    return answered[0]


def job_phase(n: int) -> None:
    from django.db import transaction

    from bimride.jobs.engine.enqueue import enqueue

    for start in range(0, n, 100):
        with transaction.atomic():
            for i in range(start, min(n, start + 100)):
                enqueue("bench.noop_default", {"n": i})


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.capacity")
    parser.add_argument("--rides", type=int, default=200)
    parser.add_argument("--jobs", type=int, default=3000)
    parser.add_argument("--pings", type=int, default=2000)
    parser.add_argument("--idle", type=float, default=20.0)
    args = parser.parse_args()
    base = os.environ["DATABASE_URL"]
    url = prepare(base)
    os.environ |= {"DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bimride.settings"}
    os.environ["JOB_EXTRA_MODULES"] = "bench.common.jobtypes,bench.reliability.jobtypes"
    import django

    django.setup()
    from bench.reliability.hosts import Host
    from bench.reliability.procs import Processes
    from devtools.pgbouncer import PgBouncer
    from devtools.postmark_standin import PostmarkStandin
    from devtools.stripe_standin import StripeStandin

    pooler = PgBouncer(url)
    stripe, email = StripeStandin().start(), PostmarkStandin().start()
    procs = Processes(url)
    try:
        env = {
            "DATABASE_URL": pooler.start(),
            "DB_TRANSACTION_POOLER": "1",
            "JOB_LISTEN_DATABASE_URL": url,
            "RIDE_EXPIRY_SECONDS": "5",  # the expiry sweep finds nothing of the measured rides
            "JOB_EXTRA_MODULES": os.environ["JOB_EXTRA_MODULES"],
            "STRIPE_API_BASE": stripe.api_base,
            **email.settings(),
        }
        host = Host(1, procs, env, workers=2, prefix="capacity")
        host.start()
        counters = Counters(url, pooler)
        log("warming up: 10 rides")
        ride_phase([host], actors(5, "warm"), 10)
        pairs = actors(10, "cap")
        wait_idle(60)
        time.sleep(2)
        log(f"idle for {args.idle:.0f} s")
        before = counters.read()
        time.sleep(args.idle)
        idle = diff(before, counters.read())
        log(f"{args.rides} rides through the API")
        before = counters.read()
        rides, ride_jobs = ride_phase([host], pairs, args.rides)
        left = wait_idle(120)
        rides_delta = diff(before, counters.read())
        log(f"{args.pings} location pings")
        before = counters.read()
        pings = ping_phase(host.base, [driver for _, driver in pairs], args.pings)
        left += wait_idle(120)
        pings_delta = diff(before, counters.read())
        log(f"{args.jobs} no-op jobs")
        before = counters.read()
        job_phase(args.jobs)
        left += wait_idle(120)
        jobs_delta = diff(before, counters.read())
    finally:
        procs.stop_all()
        pooler.stop()
        stripe.stop()
        email.stop()
    document = {
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "cores": os.cpu_count(),
        "load_average": Path("/proc/loadavg").read_text().split()[0],
        "idle": idle,
        "rides": {"n": rides, "jobs": ride_jobs, "total": rides_delta},
        "per_ride": per(rides_delta, idle, rides),
        "per_job": per(jobs_delta, idle, args.jobs),
        "per_ping": per(pings_delta, idle, pings),
        "pings": {"n": pings, "total": pings_delta},
        "jobs": {"n": args.jobs, "total": jobs_delta},
        "unfinished": left,
    }
    document["per_ride"]["jobs"] = ride_jobs / rides
    publish(document)


def publish(document: dict) -> None:
    ride, job, ping = document["per_ride"], document["per_job"], document["per_ping"]
    rows = [
        ("statements (BEGIN and COMMIT included)", "statements", "{:.1f}"),
        ("transactions committed", "commits", "{:.1f}"),
        ("rows written (inserted + updated + deleted)", "rows_written", "{:.1f}"),
        ("WAL bytes", "wal_bytes", "{:,.0f}"),
        ("PostgreSQL CPU, ms", "postgres_cpu_s", None),
    ]
    lines = [
        f"# Capacity: one PostgreSQL ({document['generated_at']}, {document['cores']} cores,"
        f" load {document['load_average']})",
        "",
        f"{document['rides']['n']} rides through the API ({ride['jobs']:.1f} jobs each) and"
        f" {document['pings']['n']} location pings (their minute's fold included) and"
        f" {document['jobs']['n']} no-op jobs, through PgBouncer; the idle rate subtracted.",
        "",
        "| per | ride (its jobs included) | location ping | no-op job |",
        "|---|---|---|---|",
    ]
    for label, key, form in rows:
        if form is None:
            cells = [f"{x[key] * 1000:.2f}" for x in (ride, ping, job)]
        else:
            cells = [form.format(x[key]) for x in (ride, ping, job)]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines += ["", f"Unfinished jobs at the end: {document['unfinished']}.", ""]
    markdown = "\n".join(lines)
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "capacity.json").write_text(json.dumps(document, indent=2) + "\n")
    (RESULTS / "capacity.md").write_text(markdown)
    print(markdown)


if __name__ == "__main__":
    main()
