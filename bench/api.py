"""`make bench-api`: latency and errors of the ride flow under a steady open-loop load.

Usage: ``python -m bench.api [--duration 60] [--rate 200] [--quick] [--repeat N]
[--sweep 10,25,50] [--py-spy SECONDS]`` with DATABASE_URL set (the Makefile exports it). On
that server the benchmark uses its own database `bimride_bench_api` (created if missing, emptied
and migrated before each phase) and starts production-like processes (`bench.api_setup`):
gunicorn (`--web-workers` sync workers, DEBUG off, logs at WARNING), one qcluster per queue, the
Stripe and Postmark stand-ins. A separate process (`bench.api_load`) sends the ride flow
(create, accept, start, complete, and as many location pings) at a constant rate while the
workers run and drain the jobs it causes.

Phases: "after" (the product: the receipt is a job) at the full rate, `--repeat` times (the
medians are reported), optionally at the `--sweep` rates; then "before" (`bench.settings_before`:
the receipt sent inside the completion request, the Postmark stand-in answering in 2 s) at a
rate it can bear, beside "after" at that same rate, for the ratio. Prints the tables, writes
bench/results/api.json, api.md and api_latency.png (`bench.api_report`). Every process is
stopped at the end."""

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import psycopg

from bench.api_report import (
    compact,
    markdown,
    median_of,
    per_second,
    plot,
    summarize,
    sweep_table,
    table,
)
from bench.api_setup import (
    BENCH_DB,
    DRIVERS,
    RIDERS,
    CpuMeter,
    job_backlog,
    job_totals,
    lock_server,
    log,
    reset_database,
    seed,
    start_profilers,
    start_services,
    stop_services,
    summarize_profiles,
    warm_up,
)
from bench.jobs import load_average, versions, with_database, write_atomically
from bench.procs import ROOT, Service, kill_leftovers

RESULTS = ROOT / "bench" / "results"


# --- one phase ----------------------------------------------------------------------------------
def run_phase(phase: str, url: str, rate: float, duration: float, args, tmp: Path) -> dict:
    log(f"{phase}: resetting {BENCH_DB}, seeding {RIDERS} riders and {DRIVERS} drivers")
    reset_database(url)
    riders, drivers = seed()
    services, base = start_services(phase, url, args, tmp)
    load = None
    try:
        warm_up(base, drivers)
        timeout = args.timeout if phase == "after" else max(args.timeout, 30.0)
        plan = {"base": base, "rate": rate, "duration": duration, "timeout": timeout}
        plan |= {"riders": riders, "drivers": drivers}
        plan_path, out_path = tmp / f"plan-{phase}.json", tmp / f"load-{phase}.json"
        plan_path.write_text(json.dumps(plan))
        out_path.unlink(missing_ok=True)
        log(f"{phase}: {rate:g} requests/s for {duration:g}s against {base}")
        loads = [load_average()]
        # Ahead of the server in the CPU queue, as a client on its own machine would be.
        nice = ["nice", "-n", "-5"] if os.geteuid() == 0 else []
        load = Service(
            f"api-load-{phase}",
            [*nice, sys.executable, "-m", "bench.api_load", str(plan_path), str(out_path)],
            {},
        )
        meter = CpuMeter(services, url)
        cpu_first = meter.sample()
        profilers = []
        started, deadline = time.monotonic(), time.monotonic() + duration + timeout + 60
        while load.alive() and time.monotonic() < deadline:
            time.sleep(1)
            elapsed = time.monotonic() - started
            if args.py_spy and phase == "after" and not profilers and elapsed > 5:
                profilers = start_profilers(services[-1], args.py_spy, tmp)
            if int(elapsed) % 5 == 0:
                loads.append(load_average())
        if load.alive():
            raise RuntimeError(f"the load generator overran {deadline - started:.0f}s")
        if not out_path.exists():
            raise RuntimeError("the load generator wrote no result; see .data/bench-api-load-*")
        cpu_used = meter.used(cpu_first, meter.sample())
        for profiler in profilers:
            profiler.wait(timeout=60)
        backlog_at_end = job_backlog()
        drain_started = time.monotonic()
        while sum(job_backlog().values()) and time.monotonic() - drain_started < args.drain:
            time.sleep(1)
        drained = time.monotonic() - drain_started
        result = json.loads(out_path.read_text())
        summary = summarize(result, rate, duration)
        cpu_used["load generator"] = round(result["cpu_seconds"], 1)
        summary.update(
            phase=phase,
            load_average=loads,
            jobs={
                "backlog_at_end_of_load": backlog_at_end,
                "backlog_after_drain": job_backlog(),
                "drain_seconds": round(drained, 1),
                "totals": job_totals(),
            },
            profile=summarize_profiles(tmp) if profilers else {},
            cpu_seconds=cpu_used,
            cpu_ms_per_request={
                name: round(1000 * used / max(summary["sent"], 1), 2)
                for name, used in cpu_used.items()
            },
        )
        summary["series"] = per_second(result["records"])
        return summary
    finally:
        if load is not None:
            load.stop()
        stop_services(services)


# --- main ---------------------------------------------------------------------------------------
def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(prog="python -m bench.api", description=__doc__)
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load (after)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s (after)")
    parser.add_argument("--quick", action="store_true", help="15 s after, 10 s before")
    parser.add_argument("--repeat", type=int, default=1, help="runs of the after phase")
    parser.add_argument("--before-rate", type=float, default=10.0, help="requests/s (before)")
    parser.add_argument("--before-duration", type=float, default=30.0)
    parser.add_argument("--skip-before", action="store_true")
    parser.add_argument(
        "--sweep", default="", help="also run the after phase at these rates, e.g. 10,25,50"
    )
    parser.add_argument("--sweep-duration", type=float, default=20.0)
    parser.add_argument("--web-workers", type=int, default=3)
    parser.add_argument("--worker-class", default="sync")
    parser.add_argument("--threads", type=int, default=0, help="gunicorn --threads (gthread)")
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout, seconds")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for jobs")
    parser.add_argument("--py-spy", type=int, default=0, help="profile the web workers N s")
    args = parser.parse_args(argv)
    if args.quick:
        args.duration, args.before_duration, args.drain = 15.0, 10.0, 10.0
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        raise SystemExit("bench-api: set DATABASE_URL (make bench-api does)")
    admin = lock_server(base_url)
    url = with_database(base_url, BENCH_DB)
    tmp = Path(tempfile.mkdtemp(prefix="bench-api-"))
    os.environ["BENCH_PIDFILE"] = str(tmp / "pids")
    os.environ.update(DATABASE_URL=url, DJANGO_SETTINGS_MODULE="bimride.settings", DEBUG="false")
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(tmp / "metrics-bench")
    import django

    django.setup()
    if load_average() > 0.5:
        log(f"the machine is busy (load {load_average()}): figures will be skewed")
    started = time.time()
    document = {"config": vars(args), "load_averages": {}}
    try:
        runs = [
            run_phase("after", url, args.rate, args.duration, args, tmp) for _ in range(args.repeat)
        ]
        document["after"] = {"runs": runs, "median": median_of(runs)}
        print(table(document["after"]["median"]), flush=True)
        if args.sweep:
            document["sweep"] = [
                compact(run_phase("after", url, float(r), args.sweep_duration, args, tmp))
                for r in args.sweep.split(",")
            ]
            print(sweep_table(document["sweep"]), flush=True)
        if not args.skip_before:
            rate, duration = args.before_rate, args.before_duration
            same = run_phase("after", url, rate, duration, args, tmp)
            document["after_at_before_rate"] = compact(same)
            before = run_phase("before", url, rate, duration, args, tmp)
            document["before"] = {"runs": [before]}
            print(table(same), flush=True)
            print(table(before), flush=True)
            after_complete = same["endpoints"]["complete"]
            document["ratio_complete"] = {
                key: (before["endpoints"]["complete"][key] / after_complete[key])
                if before["endpoints"]["complete"][key] and after_complete[key]
                else None
                for key in ("p50_ms", "p95_ms", "p99_ms")
            }
    finally:
        killed = kill_leftovers(tmp / "pids")
        if killed:
            log(f"killed leftover process groups {killed}")
        admin.close()
    for phase in ("after", "before"):
        if phase in document:
            document["load_averages"][phase] = [
                max(run["load_average"]) for run in document[phase]["runs"]
            ]
    document["versions"] = versions(admin_version(url)) | {"machine": platform.machine()}
    document["elapsed_seconds"] = round(time.time() - started, 1)
    document["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    write_atomically(RESULTS / "api.json", json.dumps(document, indent=1) + "\n")
    write_atomically(RESULTS / "api.md", markdown(document))
    plot(document, RESULTS / "api_latency.png")
    log(f"wrote {RESULTS / 'api.md'}, api.json and api_latency.png")


def admin_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


if __name__ == "__main__":
    main()
