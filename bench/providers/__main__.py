"""`make bench-providers`: jobs that wait on providers, with the Stripe and email stand-ins as
slow as the real ones.

Usage: ``python -m bench.providers [--quick] [--only jobs|flow] [--baseline REF] [--jobs N]
[--rides R] [--duration S] [--drain S] [--repeat N]`` with DATABASE_URL set (the Makefile
exports it).

(a) `bench.providers.jobs`: `--jobs` jobs (1,500) whose handler reads a PaymentIntent from the
Stripe stand-in answering in `--stripe-latency` s (0.3), drained by this tree's `critical`
queue worker at default settings, then by Celery's threads pool at the same total concurrency
(processes × attempts per process, as the settings say), Redis as its broker: jobs per second,
peak summed RSS of the workers, peak database sessions.

(b) `bench.providers.flow`: the ride flow at `--rides` rides/s (10; 8 requests a ride) for
`--duration` s (60) with Stripe at 0.3 s and email at `--email-latency` s (2), against a
baseline release (`--baseline`, default f21c151, a temporary git worktree) and this tree,
runs alternating A, B (`--repeat` pairs): completed → captured and → receipt sent p50 / p95,
rides captured and receipted within `--drain` s (300) after the load, peak summed RSS of web
and workers, peak database sessions.

`--quick`: 150 jobs, 20 s of load, 60 s to drain. Prints the tables and writes
bench/results/providers.md and providers.json. Every process is stopped at the end, whatever
happens; it holds `bench.api`'s lock (one API benchmark at a time per server).
"""

import argparse
import contextlib
import json
import os
import signal
import sys
import time

import requests

from bench.api.compare import alternation
from bench.api.setup import (
    BENCH_DB,
    baseline_worktree,
    check_code,
    current_arm,
    drop_databases,
    fresh_database,
    held_run,
    prepare_template,
)
from bench.common.procs import ROOT, Service
from bench.common.provider_call import PROVIDER_QUEUE, intent_create
from bench.common.runs import load_average, write_atomically
from bench.providers.flow import run_flow
from bench.providers.jobs import run_celery, run_ours, start_redis, worker_env, worker_settings
from bench.providers.peaks import log
from devtools.supervisor import free_port, wait_http

RESULTS = ROOT / "bench" / "results"
BASELINE = "f21c151"  # the release before jobs ran many attempts per worker process


# --- (a) ----------------------------------------------------------------------------------------
def jobs_part(args, env: dict) -> dict:
    """Ours, then Celery, each against a Stripe stand-in of its own (so that each side's peak of
    requests at once is its own)."""
    arm = current_arm()
    prepare_template(env["admin"], env["base_url"], arm)
    fresh_database(env["admin"], arm)
    unused = "http://127.0.0.1:9"  # the settings are read before any stand-in runs
    found = worker_settings(worker_env(env["url"], unused, env["tmp"]), PROVIDER_QUEUE)
    concurrency = (found["workers"] or 1) * found["per_process"]
    log(
        f"(a) {PROVIDER_QUEUE}: {found['workers']} worker processes × {found['per_process']}"
        f" attempts each (JOB_CONCURRENCY: {found['setting']}); Celery's threads: {concurrency}"
    )
    redis = None
    try:
        with slow_stripe(args.stripe_latency) as (base, intent):
            log(f"(a) ours: {args.jobs} jobs at {args.stripe_latency:g} s each")
            ours_env = worker_env(env["url"], base, env["tmp"])
            ours = run_ours(env["url"], BENCH_DB, ours_env, args.jobs, intent, args.limit)
            ours["stand_in_peak_in_flight"] = peak_in_flight(base)
        log(f"(a) ours: {ours['done']} done, {ours['jobs_per_second']}/s, {ours['rss_mb']} MB")
        redis, redis_url = start_redis()
        with slow_stripe(args.stripe_latency) as (base, intent):
            log(f"(a) Celery, threads pool, concurrency {concurrency}: {args.jobs} jobs")
            celery = run_celery(redis_url, base, concurrency, args.jobs, intent, args.limit)
            celery["stand_in_peak_in_flight"] = peak_in_flight(base)
        log(f"(a) Celery: {celery['done']} done, {celery['jobs_per_second']}/s")
    finally:
        if redis is not None:
            redis.stop()
        drop_databases(env["admin"], [arm])
    return {
        "label": f"{args.jobs:,} jobs waiting {args.stripe_latency:g} s on Stripe",
        "queue": PROVIDER_QUEUE,
        "workers": found["workers"],
        "per_process": found["per_process"],
        "setting": found["setting"],
        "concurrency": concurrency,
        "stripe_latency": args.stripe_latency,
        "ours": ours,
        "celery": celery,
    }


@contextlib.contextmanager
def slow_stripe(latency: float):
    """A Stripe stand-in answering `latency` s late, holding one PaymentIntent to read:
    (its base URL, the intent's id); this process's `bench.common.provider_call` talks to it."""
    port = free_port()
    command = [sys.executable, "-m", "devtools.stripe_standin", "--port", str(port)]
    service = Service("providers-stripe", [*command, "--latency", str(latency)], {})
    try:
        base = f"http://127.0.0.1:{port}"
        wait_http(f"{base}/_standin/state", 30, process=service)
        os.environ["STRIPE_API_BASE"] = base
        yield base, intent_create()
    finally:
        service.stop()


def peak_in_flight(base: str) -> int:
    """The most requests the stand-in has answered at once."""
    return requests.get(f"{base}/_standin/state", timeout=10).json()["peak_in_flight"]


# --- (b) ----------------------------------------------------------------------------------------
def flow_part(args, env: dict) -> dict:
    runs = []
    with baseline_worktree(args.baseline) as baseline:
        arms = [baseline, current_arm()]
        try:
            for arm in arms:
                check_code(arm)
                prepare_template(env["admin"], env["base_url"], arm)
            for arm in alternation(arms, args.repeat):
                runs.append(run_flow(arm, args, env))
        finally:
            drop_databases(env["admin"], arms)
    return {
        "arms": {arm.name: arm.label for arm in arms},
        "rides_per_second": args.rides,
        "duration": args.duration,
        "drain": args.drain,
        "stripe_latency": args.stripe_latency,
        "email_latency": args.email_latency,
        "runs": runs,
    }


# --- the report ---------------------------------------------------------------------------------
def cell(value, unit: str = "") -> str:
    if value is None:
        return "—"
    if isinstance(value, float):
        value = f"{value:,.1f}" if value >= 100 else f"{value:g}"
    elif isinstance(value, int):
        value = f"{value:,}"
    return f"{value}{unit}"


def jobs_table(part: dict) -> str:
    ours, celery = part["ours"], part["celery"]
    rows = [
        (
            "in flight at once",
            f"{part['workers']} processes × {part['per_process']}",
            f"1 process × {part['concurrency']} threads",
        ),
        (
            "jobs done / enqueued",
            f"{ours['done']:,} / {ours['jobs']:,}",
            f"{celery['done']:,} / {celery['jobs']:,}",
        ),
        (
            "jobs/s (first start → last end)",
            cell(ours["jobs_per_second"]),
            cell(celery["jobs_per_second"]),
        ),
        (
            "peak summed RSS of the workers",
            cell(ours["rss_mb"], " MB"),
            cell(celery["rss_mb"], " MB"),
        ),
        ("peak processes", cell(ours["processes"]), cell(celery["processes"])),
        ("peak database sessions", cell(ours["db_connections"]), "— (Redis)"),
        (
            "Stripe stand-in: peak requests at once",
            cell(ours["stand_in_peak_in_flight"]),
            cell(celery["stand_in_peak_in_flight"]),
        ),
    ]
    ratio = (
        ours["jobs_per_second"] / celery["jobs_per_second"]
        if ours["jobs_per_second"] and celery["jobs_per_second"]
        else None
    )
    lines = [
        f"**(a) {part['label']}** — the `{part['queue']}` queue at default settings"
        f" (JOB_CONCURRENCY: `{part['setting']}`), Stripe stand-in at {part['stripe_latency']:g} s",
        "",
        "| | ours (bimride.jobs) | Celery, threads pool + Redis | target |",
        "|---|---|---|---|",
    ]
    targets = {"jobs/s (first start → last end)": "≥ 100/s; ≥ 1.0× Celery"}
    lines += [f"| {a} | {b} | {c} | {targets.get(a, '')} |" for a, b, c in rows]
    lines += ["", f"ours / Celery: {ratio:.2f}×" if ratio else "ours / Celery: —"]
    return "\n".join(lines)


FLOW_ROWS = [
    ("rides completed", "rides_completed", "", ""),
    ("captured by the end of the load", "captured_by_end_of_load", "", ""),
    ("captured within the drain", "captured", "", "every ride"),
    ("receipted within the drain", "receipted", "", "every ride"),
    ("completed → captured p50", "captured_p50_s", " s", ""),
    ("completed → captured p95", "captured_p95_s", " s", "≤ 2 s"),
    ("completed → receipt sent p50", "receipt_p50_s", " s", ""),
    ("completed → receipt sent p95", "receipt_p95_s", " s", "≤ 5 s"),
    ("API `complete` p95", "complete_p95_ms", " ms", ""),
    ("requests without their expected answer", "errors", "", ""),
    ("peak summed RSS, web + workers", "rss_mb", " MB", "≤ today's (about 1.7 GB)"),
    ("peak processes, web + workers", "processes", "", ""),
    ("peak database sessions", "db_connections", "", "≤ 2× today's (about 20)"),
]


def flow_table(part: dict) -> str:
    runs = part["runs"]
    heads = [f"{r['arm']}: {part['arms'][r['arm']]}" for r in runs]
    lines = [
        f"**(b) the ride flow at {part['rides_per_second']:g} rides/s"
        f" ({part['rides_per_second'] * 8:g} requests/s, 3 of 8 location pings) for"
        f" {part['duration']:g} s**, Stripe at {part['stripe_latency']:g} s, email at"
        f" {part['email_latency']:g} s; drain: up to {part['drain']:g} s after the load",
        "",
        "| | " + " | ".join(heads) + " | target |",
        "|---|" + "---|" * len(runs) + "---|",
    ]
    for label, key, unit, target in FLOW_ROWS:
        lines.append(
            f"| {label} | " + " | ".join(cell(r[key], unit) for r in runs) + f" | {target} |"
        )
    in_flight = [
        ", ".join(f"{q} {w['workers']}×{w['per_process']}" for q, w in r["workers"].items())
        for r in runs
    ]
    lines.append("| worker processes × attempts each | " + " | ".join(in_flight) + " | |")
    return "\n".join(lines)


def markdown(document: dict) -> str:
    parts = [
        "# make bench-providers",
        "",
        f"{document['generated_at']}, {document['cpus']} CPUs, load average before"
        f" {document['load_average_before']}, {document['elapsed_seconds'] / 60:.1f} minutes;"
        f" {'quick' if document['config']['quick'] else 'full'} run.",
    ]
    if "jobs" in document:
        parts += ["", jobs_table(document["jobs"])]
    if "flow" in document:
        parts += ["", flow_table(document["flow"])]
    return "\n".join(parts) + "\n"


# --- main ---------------------------------------------------------------------------------------
def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.providers",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="150 jobs, 20 s load, 60 s drain")
    parser.add_argument("--only", choices=("jobs", "flow"), help="run one part")
    parser.add_argument("--baseline", default=BASELINE, help="git ref of release A in (b)")
    parser.add_argument("--jobs", type=int, default=1500, help="jobs in (a)")
    parser.add_argument("--limit", type=float, default=600.0, help="(a): s to wait per side")
    parser.add_argument("--rides", type=float, default=10.0, help="rides/s in (b)")
    parser.add_argument("--duration", type=float, default=60.0, help="s of load in (b)")
    parser.add_argument("--drain", type=float, default=300.0, help="(b): s to wait after load")
    parser.add_argument("--repeat", type=int, default=1, help="(b): A, B pairs")
    parser.add_argument("--stripe-latency", type=float, default=0.3)
    parser.add_argument("--email-latency", type=float, default=2.0)
    args = parser.parse_args(argv)
    if args.quick:
        args.jobs, args.limit, args.duration, args.drain = 150, 120.0, 20.0, 60.0
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        raise SystemExit("bench-providers: set DATABASE_URL (make bench-providers does)")
    signal.signal(signal.SIGTERM, terminated)
    load = load_average()
    document = {"config": vars(args), "load_average_before": load, "cpus": os.cpu_count()}
    if load > 0.5:
        log(f"the machine is busy (load {load}): figures will be skewed")
    started = time.time()
    with held_run(base_url, "bench-providers", log) as env:
        (env["tmp"] / "metrics").mkdir()
        if args.only in (None, "jobs"):
            document["jobs"] = jobs_part(args, env)
            print(jobs_table(document["jobs"]), flush=True)
        if args.only in (None, "flow"):
            document["flow"] = flow_part(args, env)
            print(flow_table(document["flow"]), flush=True)
    document["elapsed_seconds"] = round(time.time() - started, 1)
    document["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    write_atomically(RESULTS / "providers.json", json.dumps(document, indent=1, default=str) + "\n")
    write_atomically(RESULTS / "providers.md", markdown(document))
    log(f"wrote {RESULTS}/providers.md and .json; {document['elapsed_seconds'] / 60:.1f} minutes")


def terminated(*_) -> None:
    log("terminated: stopping the processes, dropping the databases, removing the worktree")
    sys.exit(143)


if __name__ == "__main__":
    main()
