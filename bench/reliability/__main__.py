"""`make reliability`: BimRide under faults, on loopback, against its own embedded PostgreSQL.

    python -m bench.reliability [--quick] [--only 1,2,3,4,5,6,7,8]

Starts a separate embedded server (data dir .data/pg-reliability, so it can be stopped and
started without disturbing `make run` or `make test`), migrates it, then runs the scenarios:

1. worker crashes   N jobs, 2 qclusters, a random worker SIGKILLed every 2-3 s, whole
                    clusters killed and restarted, the relay every ~2 s
2. database restart web + 1 qcluster + steady requests; PostgreSQL stopped for 10 s
3. duplicates       concurrent same-key ride requests; drivers racing for one ride
4. bad input        schemathesis over /api/schema/, malformed bodies, wrong content types
5. security         the authorisation matrix, staff-only surfaces, throttles, password
                    guessing at a staff account from one address and from 50
6. provider outage  email and Stripe stand-ins failing 503 (a stub until they exist)
7. many hosts       3 hosts (gunicorn + a qcluster per queue each) through one PgBouncer to
                    one PostgreSQL under the ride flow; one host SIGKILLed whole mid-run
8. in-flight kills  one worker process running 16 attempts at once (threads) under a steady
                    load, SIGKILLed whenever half of them or more are in flight, 4 times

Each ends with an accounting (lost, duplicated, 5xx). The table goes to stdout and to
bench/results/reliability.md and .json. Every process started is stopped in `finally`.
"""

import argparse
import json
import logging
import os
import subprocess
import sys
import time
import traceback
from dataclasses import asdict
from pathlib import Path
from types import SimpleNamespace

from bench.reliability.procs import PGDATA, ROOT, Processes, devdb, say

RESULTS = ROOT / "bench" / "results"
BUDGET = 15 * 60  # seconds: scenarios not started by then are reported as skipped

FULL = {
    "jobs": 5000,
    "workers": 2,
    "job_sleep": 0.05,
    "cluster_kills": 2,
    "cluster_kill_after": 8,
    "cluster_kill_every": 20,
    "load_timeout": 300,
    "drain_timeout": 60,
    "wait_for_broker_retry": True,
    "outage_jobs": 300,
    "outage_seconds": 10,
    "after_seconds": 10,
    "dup_requests": 50,
    "racing_drivers": 20,
    "fuzz_examples": 15,  # schemathesis's -n: cases per operation and phase
    "fuzz_min_cases": 3000,  # over the four actors
    "fuzz_seed": 20261202,
    "fuzz_dead_letters": 30,  # for staff to list, retry and discard
    "provider_rides": 12,
    "provider_outage_seconds": 60,
    "provider_retry_scale": 1.0,
    "provider_drain_timeout": 200,
    "hosts_pairs": 12,
    "hosts_load_seconds": 100,
    "hosts_kill_after": 40,
    "hosts_effects_per_second": 3,
    "hosts_drain_timeout": 240,
    "inflight_concurrency": 16,
    "inflight_jobs_per_second": 20,
    "inflight_job_sleep": 1.0,
    "inflight_load_seconds": 40,
    "inflight_kills": 4,
    "inflight_kill_every": 6,
}
QUICK = {
    **FULL,
    "jobs": 1000,
    "cluster_kills": 1,
    "cluster_kill_after": 5,
    "load_timeout": 120,
    "drain_timeout": 45,
    "wait_for_broker_retry": False,
    "outage_jobs": 150,
    "after_seconds": 5,
    "fuzz_examples": 5,
    "fuzz_min_cases": 1000,
    "provider_rides": 6,
    "provider_outage_seconds": 20,
    "provider_retry_scale": 0.3,
    "provider_drain_timeout": 90,
    "hosts_pairs": 8,
    "hosts_load_seconds": 50,
    "hosts_kill_after": 20,
}
STANDINS = ("devtools/stripe_standin", "devtools/postmark_standin.py")


def provider_outage(procs, cfg):
    """Scenario 6: the Stripe and Postmark stand-ins fail 503 under load (see
    bench/reliability/providers.py); reported "not run" while either stand-in is missing."""
    from bench.reliability.faults import Result

    missing = [path for path in STANDINS if not (ROOT / path).exists()]
    if missing:
        result = Result("6. provider outage", status="not run")
        result.notes.append("not run: stand-ins not available (" + ", ".join(missing) + ")")
        return result
    from bench.reliability.providers import provider_outage as run_outage

    return run_outage(procs, cfg)


def setup_database() -> str:
    say(f"starting the reliability PostgreSQL (BIMRIDE_PGDATA={PGDATA})")
    url = devdb("start")
    import psycopg

    # A fresh database each run: leftovers of an earlier run would lag the queues.
    admin_url = url.replace("/bimride?", "/postgres?")
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute("DROP DATABASE IF EXISTS bimride WITH (FORCE)")
    url = devdb("start")  # creates it again
    os.environ["DATABASE_URL"] = url
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bimride.settings")
    os.environ["JOB_EXTRA_MODULES"] = "bench.reliability.jobtypes"
    say("migrating")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], cwd=ROOT, check=True
    )
    import django

    django.setup()
    logging.getLogger("bimride.jobs.engine.relay").setLevel(
        logging.ERROR
    )  # the driver's relay calls
    return url


def run(cfg, only: set[int]) -> list:
    from bench.reliability import faults, fuzz, http
    from bench.reliability.faults import Result
    from bench.reliability.hosts import many_hosts

    started = time.monotonic()
    results: list[Result] = []
    procs = Processes(os.environ["DATABASE_URL"])

    def scenario(number: int, name: str, func, *args) -> None:
        if number not in only:
            return
        if time.monotonic() - started > BUDGET:
            results.append(Result(name, status="skipped", notes=["time budget spent"]))
            return
        say(f"scenario {name}")
        t0 = time.monotonic()
        try:
            result = func(*args)
        except Exception as error:  # noqa: BLE001 - one broken scenario must not hide the rest
            result = Result(name)
            result.fail(f"crashed: {error!r}")
            traceback.print_exc()
            from django.db import connections

            connections.close_all()
        result.notes.append(f"took {time.monotonic() - t0:.0f}s")
        say(
            f"  -> {result.status}: lost {result.lost}, duplicated {result.duplicated}, "
            f"5xx {result.errors_5xx}"
        )
        results.append(result)

    try:
        scenario(1, "1. worker crashes", faults.worker_crashes, procs, cfg)
        base = ""
        if only & {2, 3, 5, 6}:
            _, base = procs.web()
            say(f"web server at {base}")
        scenario(3, "3. duplicates", http.duplicates, base, cfg)
        scenario(5, "5. security", http.security, base)
        scenario(4, "4. bad input", fuzz.bad_input, procs, cfg)  # its own web process
        riders = (
            [http.make_actor("rider", f"steady{i}").token for i in range(3)] if 2 in only else []
        )
        scenario(6, "6. provider outage", provider_outage, procs, cfg)
        scenario(2, "2. database restart", faults.database_restart, procs, base, riders, cfg)
        scenario(8, "8. kills with attempts in flight", faults.inflight_kills, procs, cfg)
        scenario(7, "7. many hosts", many_hosts, procs, cfg)
    finally:
        say("stopping every process this run started")
        procs.stop_all()
    return sorted(results, key=lambda r: r.scenario)


COLUMNS = ("scenario", "load", "faults injected", "jobs", "lost", "duplicated", "5xx", "result")


def table(results: list) -> str:
    rows = [
        (r.scenario, r.load, r.faults, r.jobs, r.lost, r.duplicated, r.errors_5xx, r.status)
        for r in results
    ]
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def write(results: list, cfg, mode: str, elapsed: float) -> str:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = table(results)
    notes = "\n".join(
        f"- **{r.scenario}**: "
        + "; ".join(n for n in r.notes if not n.startswith("  "))
        + "".join(f"\n  - {n.strip()}" for n in r.notes if n.startswith("  "))
        for r in results
    )
    when = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    md = (
        f"# BimRide reliability ({mode}, {when}, {elapsed:.0f} s)\n\n"
        f"`make reliability` / `python -m bench.reliability{' --quick' if mode == 'quick' else ''}`"
        f": loopback only, its own embedded PostgreSQL.\n\n{text}\n\n## Notes\n\n{notes}\n"
    )
    (RESULTS / "reliability.md").write_text(md)
    payload = {
        "mode": mode,
        "when": when,
        "elapsed_seconds": round(elapsed, 1),
        "config": {k: v for k, v in vars(cfg).items() if k not in ("deadline", "reserve")},
        "results": [asdict(r) for r in results],
    }
    (RESULTS / "reliability.json").write_text(json.dumps(payload, indent=2, default=str) + "\n")
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.reliability", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--quick", action="store_true", help="smaller scenarios (~3 minutes)")
    parser.add_argument("--only", default="1,2,3,4,5,6,7,8", help="scenario numbers, e.g. 1,4")
    parser.add_argument("--jobs", type=int, help="jobs in scenario 1")
    args = parser.parse_args(argv)
    cfg = SimpleNamespace(**(QUICK if args.quick else FULL))
    if args.jobs:
        cfg.jobs = args.jobs
    only = {int(n) for n in args.only.split(",") if n.strip()}
    started = time.monotonic()
    cfg.deadline = started + BUDGET - 60  # scenarios shorten their waits to end in time
    # what scenario 1 leaves for the rest when it waits for django-q2's redeliveries
    cfg.reserve = 150 + (cfg.provider_outage_seconds + 150 if 6 in only else 0)
    if 7 in only:  # the last scenario: the others end their waits in time for it
        cfg.deadline -= cfg.hosts_load_seconds + cfg.hosts_drain_timeout
    try:
        setup_database()
        results = run(cfg, only)
    finally:
        say("stopping the reliability PostgreSQL")
        try:
            devdb("stop")
        except Exception as error:  # noqa: BLE001 - report, the run's result matters more
            say(f"could not stop PostgreSQL: {error}")
    elapsed = time.monotonic() - started
    text = write(results, cfg, "quick" if args.quick else "full", elapsed)
    print("\n" + text + "\n", flush=True)
    for r in results:
        for note in r.notes:
            print(f"{r.scenario}: {note}")
    print(f"\nwritten: {Path(RESULTS / 'reliability.md').relative_to(ROOT)} and .json")
    return 0 if all(r.status in ("pass", "not run") for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
