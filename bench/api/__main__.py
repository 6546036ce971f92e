"""`make bench-api`: the ride flow under a steady open-loop load, this release (B) against a
baseline release (A), as issue #16's report asks.

Usage: ``python -m bench.api [--baseline REF] [--repeat N] [--quick] [--web-workers N]
[--web-class sync|gthread] [--web-threads N] [--web-args '...'] [--env KEY=VALUE] …`` with
DATABASE_URL set (the Makefile exports it). The baseline (default 3d48880) is checked out into
a temporary git worktree (.data/bench-baseline, removed at the end) and run by the project's
interpreter and packages. On that server each release gets a template database migrated and
seeded by its own code; every run copies its release's template into `bimride_bench_api` and
starts that release's processes (`bench.api.setup`): gunicorn (DEBUG off, logs at WARNING), one
qcluster per queue, the Stripe and Postmark stand-ins. A separate process (`bench.api.load`)
sends the ride flow (create, accept, the rider's GET of the ride, start, complete, location
pings) at a constant rate while the workers run and drain the jobs it causes.

At each rate, lowest first, runs alternate A, B (`--repeat` pairs): the latency table's rates
(10, 50, 100, 200 requests/s) and the capacity search's steps (every `--capacity-step` up to
`--max-rate`; a release stops going up at its first failure: `complete` p95 not under 50 ms or
any error). Reported (`bench.api.compare`): CPU per request per process at `--cpu-rate`, each
endpoint's p50/p95 per rate, capacity, the issue's targets as B / A ratios and the headline
(`complete` p95 under 15 ms at 200 requests/s). Prints the tables, writes bench/results/api.md,
api.json and api_latency.png.

``--receipt`` runs the earlier comparison instead (this tree only): "after" (the receipt is a
job) at `--rate`, `--repeat` times, optionally at the `--sweep` rates, then "before"
(`bench.api.settings_before`: the receipt sent inside the completion request, the Postmark stand-in
answering in 2 s) beside "after" at `--before-rate`; it writes api_receipt.md, .json and
api_receipt_latency.png. Every process is stopped at the end, whatever happens."""

import argparse
import json
import os
import platform
import signal
import sys
import time

import psycopg

from bench.api import compare as ab
from bench.api.report import (
    compact,
    markdown,
    median_of,
    per_second,
    plot,
    summarize,
    sweep_table,
    table,
)
from bench.api.setup import (
    Arm,
    CpuMeter,
    baseline_worktree,
    check_code,
    current_arm,
    drop_databases,
    fresh_database,
    held_run,
    job_backlog,
    job_totals,
    log,
    prepare_template,
    start_profilers,
    start_services,
    stop_services,
    summarize_profiles,
    wait_quiet,
    warm_up,
)
from bench.common.procs import ROOT, Service
from bench.common.runs import load_average, versions, write_atomically

RESULTS = ROOT / "bench" / "results"
BASELINE = "3d48880"  # the release issue #16 compares against


# --- one run ------------------------------------------------------------------------------------
def run_once(
    arm: Arm,
    rate: float,
    duration: float,
    args,
    env: dict,
    *,
    phase: str = "",
    settings: str = "bimride.settings",
    slow: bool = False,
    profile: bool = False,
) -> dict:
    """One run: a fresh copy of the arm's database, its processes started, `rate` requests/s for
    `duration` s, the jobs drained; CPU counted over the load and the draining."""
    admin, url, tmp = env["admin"], env["url"], env["tmp"]
    name = f"{arm.name}{'-' + phase if phase else ''} at {rate:g}/s"
    fresh_database(admin, arm)
    services, base = start_services(arm, url, args, tmp, settings, slow)
    load = None
    try:
        warm_up(base, arm.tokens["drivers"])
        timeout = max(args.timeout, 30.0) if slow else args.timeout
        plan = {"base": base, "rate": rate, "duration": duration, "timeout": timeout}
        plan |= {"riders": arm.tokens["riders"], "drivers": arm.tokens["drivers"]}
        plan_path, out_path = tmp / "plan.json", tmp / "load.json"
        plan_path.write_text(json.dumps(plan))
        out_path.unlink(missing_ok=True)
        log(f"{name}: {duration:g}s")
        loads = [load_average()]
        # Ahead of the server in the CPU queue, as a client on its own machine would be.
        nice = ["nice", "-n", "-5"] if os.geteuid() == 0 else []
        meter = CpuMeter(services, url)
        cpu_first = meter.sample()
        load = Service(
            "api-load",
            [*nice, sys.executable, "-m", "bench.api.load", str(plan_path), str(out_path)],
            {},
        )
        profilers = []
        started, deadline = time.monotonic(), time.monotonic() + duration + timeout + 60
        while load.alive() and time.monotonic() < deadline:
            time.sleep(1)
            elapsed = time.monotonic() - started
            if profile and not profilers and elapsed > 5:
                profilers = start_profilers(services[-1], args.py_spy, tmp)
            if int(elapsed) % 5 == 0:
                loads.append(load_average())
        if load.alive():
            raise RuntimeError(f"{name}: the load generator overran {deadline - started:.0f}s")
        if not out_path.exists():
            raise RuntimeError(
                f"{name}: the load generator wrote no result; see .data/bench-api-load.log"
            )
        backlog_at_end = job_backlog(url)
        drained = wait_quiet(base, url, args.drain)
        cpu_used = meter.used(cpu_first, meter.sample())
        for profiler in profilers:
            profiler.wait(timeout=60)
        result = json.loads(out_path.read_text())
        summary = summarize(result, rate, duration)
        cpu_used["load generator"] = round(result["cpu_seconds"], 2)
        summary.update(
            arm=arm.name,
            phase=phase or arm.name,
            load_average=loads,
            jobs={
                "backlog_at_end_of_load": backlog_at_end,
                "backlog_after_drain": job_backlog(url),
                "drain_seconds": round(drained, 1),
                "totals": job_totals(url),
            },
            profile=summarize_profiles(tmp) if profilers else {},
            cpu_seconds=cpu_used,
            cpu_ms_per_request={
                name: round(1000 * used / max(summary["sent"], 1), 3)
                for name, used in cpu_used.items()
            },
        )
        summary["series"] = per_second(result["records"])
        c = summary["endpoints"]["complete"]
        log(
            f"{name}: ok {summary['ok_rate']:g}/s, errors {ab.problems(summary)}, complete "
            f"p50 {c['p50_ms']} p95 {c['p95_ms']} ms, product CPU "
            f"{ab.product_cpu(summary['cpu_ms_per_request'])} ms/request"
        )
        return summary
    finally:
        if load is not None:
            load.stop()
        stop_services(services)
        for path in tmp.glob("py-spy-*.txt"):
            path.rename(path.with_suffix(f".{arm.name}.done"))


# --- A/B ----------------------------------------------------------------------------------------
def compare(args, env: dict) -> dict:
    """Runs alternating A and B at each rate, lowest first; the document of the figures."""
    document = {"config": vars(args) | {"baseline": args.baseline}, "runs": []}
    with baseline_worktree(args.baseline) as baseline:
        arms = [baseline, current_arm()]
        document["arms"] = {arm.name: arm.label for arm in arms}
        try:
            for arm in arms:
                check_code(arm)
                prepare_template(env["admin"], env["base_url"], arm)
            steps = ab.capacity_steps(args.capacity_step, args.max_rate)
            verdicts = {arm.name: {} for arm in arms}
            for rate in ab.rates_to_try(args.capacity_step, args.max_rate):
                here = [a for a in arms if ab.wanted(rate, verdicts[a.name], steps)]
                if not here:
                    continue
                duration = args.duration if rate in ab.TABLE_RATES else args.step_duration
                runs = []
                for arm in ab.alternation(here, args.repeat):
                    profile = bool(args.py_spy) and arm.name == "B" and rate == ab.HEADLINE_RATE
                    runs.append(run_once(arm, rate, duration, args, env, profile=profile))
                for arm in here:
                    verdicts[arm.name][rate] = ab.passes([r for r in runs if r["arm"] == arm.name])
                document["runs"] += [compact(r) for r in runs]
        finally:
            drop_databases(env["admin"], arms)
    document["medians"] = ab.medians(document["runs"])
    document["capacity"] = {name: ab.capacity(v, steps) for name, v in verdicts.items()}
    document["targets"] = ab.targets(document)
    document["headline"] = ab.headline(document)
    document["load_average"] = {
        name: max(
            (max(r["load_average"]) for r in document["runs"] if r["arm"] == name), default=None
        )
        for name in ("A", "B")
    }
    return document


# --- the receipt comparison (this tree only) ----------------------------------------------------
def receipt(args, env: dict) -> dict:
    arm = current_arm()
    document = {"config": vars(args), "load_averages": {}}
    try:
        prepare_template(env["admin"], env["base_url"], arm)
        runs = [
            run_once(
                arm, args.rate, args.duration, args, env, phase="after", profile=bool(args.py_spy)
            )
            for _ in range(args.repeat)
        ]
        document["after"] = {"runs": runs, "median": median_of(runs)}
        print(table(document["after"]["median"]), flush=True)
        if args.sweep:
            document["sweep"] = [
                compact(run_once(arm, float(r), args.step_duration, args, env, phase="after"))
                for r in args.sweep.split(",")
            ]
            print(sweep_table(document["sweep"]), flush=True)
        if not args.skip_before:
            rate, duration = args.before_rate, args.before_duration
            same = run_once(arm, rate, duration, args, env, phase="after")
            document["after_at_before_rate"] = compact(same)
            before = run_once(
                arm,
                rate,
                duration,
                args,
                env,
                phase="before",
                settings="bench.api.settings_before",
                slow=True,
            )
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
        drop_databases(env["admin"], [arm])
    for phase in ("after", "before"):
        if phase in document:
            document["load_averages"][phase] = [
                max(run["load_average"]) for run in document[phase]["runs"]
            ]
    return document


# --- main ---------------------------------------------------------------------------------------
def parse(argv: list[str] | None):
    parser = argparse.ArgumentParser(
        prog="python -m bench.api",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--baseline", default=BASELINE, help="git ref of release A")
    parser.add_argument("--quick", action="store_true", help="1 pair, 8 s runs: a smoke check")
    parser.add_argument("--repeat", type=int, default=3, help="A, B pairs per rate")
    parser.add_argument("--duration", type=float, default=15.0, help="s per run, table rates")
    parser.add_argument("--step-duration", type=float, default=15.0, help="s per run, other rates")
    parser.add_argument("--capacity-step", type=float, default=50.0)
    parser.add_argument("--max-rate", type=float, default=400.0)
    parser.add_argument("--cpu-rate", type=float, default=100.0, help="rate of the CPU table")
    parser.add_argument("--web-workers", type=int, default=3, help="gunicorn -w")
    parser.add_argument("--web-class", "--worker-class", dest="worker_class", default="sync")
    parser.add_argument("--web-threads", "--threads", dest="threads", type=int, default=0)
    parser.add_argument("--web-args", default="", help="more gunicorn options, one string")
    parser.add_argument(
        "--env", action="append", default=[], help="KEY=VALUE for web and workers (repeatable)"
    )
    parser.add_argument("--timeout", type=float, default=10.0, help="client timeout, seconds")
    parser.add_argument("--drain", type=float, default=30.0, help="seconds to wait for jobs")
    parser.add_argument(
        "--py-spy", type=int, default=0, help="profile B's web workers N s at 200/s"
    )
    receipt_mode = parser.add_argument_group(
        "--receipt: the receipt inside the request or as a job"
    )
    receipt_mode.add_argument("--receipt", action="store_true")
    receipt_mode.add_argument("--rate", type=float, default=200.0, help="requests/s (after)")
    receipt_mode.add_argument("--before-rate", type=float, default=10.0)
    receipt_mode.add_argument("--before-duration", type=float, default=30.0)
    receipt_mode.add_argument("--skip-before", action="store_true")
    receipt_mode.add_argument("--sweep", default="", help="also after at these rates: 10,25,50")
    args = parser.parse_args(argv)
    if any("=" not in kv for kv in args.env):
        parser.error("--env takes KEY=VALUE")
    if args.quick:
        args.repeat, args.duration, args.step_duration, args.drain = 1, 8.0, 8.0, 10.0
        args.before_duration = 10.0
    return args


def main(argv: list[str] | None = None) -> None:
    args = parse(argv)
    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        raise SystemExit("bench-api: set DATABASE_URL (make bench-api does)")
    # Stopped from outside (a CI timeout, kill): unwind, so that every process, the databases
    # and the baseline's worktree are cleaned up on the way out.
    signal.signal(signal.SIGTERM, terminated)
    with held_run(base_url, "bench-api") as env:
        if load_average() > 0.5:
            log(f"the machine is busy (load {load_average()}): figures will be skewed")
        started = time.time()
        document = receipt(args, env) if args.receipt else compare(args, env)
    document["versions"] = versions(server_version(base_url)) | {"machine": platform.machine()}
    document["cpus"] = os.cpu_count()
    document["elapsed_seconds"] = round(time.time() - started, 1)
    document["generated_at"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    RESULTS.mkdir(exist_ok=True)
    name = "api_receipt" if args.receipt else "api"
    write_atomically(RESULTS / f"{name}.json", json.dumps(document, indent=1) + "\n")
    if args.receipt:
        write_atomically(RESULTS / f"{name}.md", markdown(document))
        plot(document, RESULTS / "api_receipt_latency.png")
    else:
        text = ab.markdown_ab(document)
        write_atomically(RESULTS / f"{name}.md", text)
        ab.plot_ab(document, RESULTS / "api_latency.png")
        print(text, flush=True)
    log(f"wrote {RESULTS / name}.md and .json; {document['elapsed_seconds'] / 60:.1f} minutes")


def terminated(*_) -> None:
    log("terminated: stopping the processes, dropping the databases, removing the worktree")
    sys.exit(143)


def server_version(url: str) -> str:
    with psycopg.connect(url) as conn:
        return conn.execute("SHOW server_version").fetchone()[0]


if __name__ == "__main__":
    main()
