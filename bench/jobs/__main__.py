"""`make bench-jobs`: the job system against plain django-q2 and Celery, on real workers.

Usage: ``python -m bench.jobs [--quick] [--only ours|plain|celery]`` with DATABASE_URL set (the
Makefile exports it). The benchmark uses its own database `bimride_bench` on that server
(created if missing, migrated on every run). It runs up to three rounds; in each, every system
measures once in a child process (`bench.jobs.suites`) with that system's settings, so load that
comes and goes on the machine falls on all systems alike. Ours is measured three ways: direct,
through a PgBouncer in transaction mode that the run starts (workers LISTEN on the direct URL,
JOB_LISTEN_DATABASE_URL), and through it without that (polling; idle pickup and lateness only).
The benchmark's own connections (its lock, resets, counters, marks) always go direct. It prints
markdown tables of medians with ratios (ours / other, pooled / direct) and writes them to
bench/results/jobs.md and jobs.json. The whole run is bounded in time, and every process it
starts is stopped, killed if need be.
"""

import argparse
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common.procs import ROOT, kill_leftovers
from bench.common.runs import document_of, load_average, log, prepare_database, publish, versions
from bench.jobs.report import render
from devtools.pgbouncer import PgBouncer

GROUPS = {
    "ours": ["ours", "ours-pooled", "ours-polling"],
    "plain": ["plain-defaults", "plain-best"],
    "celery": ["celery"],
}
ORDER = ["ours", "ours-pooled", "ours-polling", "plain-defaults", "plain-best", "celery"]
POOLED = ("ours-pooled", "ours-polling")  # through PgBouncer (transaction mode)
MEASUREMENTS = ("enqueue", "drain", "pickup", "defer")
ROUNDS = {"full": 3, "quick": 1}
TOTAL = {"full": 760.0, "quick": 400.0}  # seconds for all rounds; setup comes on top
CHILD_LIMIT = 240.0  # seconds one system's round may take
KILL_GRACE = 15.0  # seconds past its deadline before a round is stopped


def redis_answers() -> str:
    """'' when Celery can run against Redis on 127.0.0.1:6379, else why not."""
    try:
        import celery  # noqa: F401
        import redis
    except ImportError as error:
        return f"Celery skipped: {error.name} is not installed (bench/requirements.txt)"
    try:
        redis.Redis(host="127.0.0.1", port=6379, socket_connect_timeout=1).ping()
    except redis.RedisError as error:
        return f"Celery skipped: Redis does not answer on 127.0.0.1:6379 ({error})"
    return ""


def suite_env(name: str, url: str, pidfile: Path, pooled: str = "") -> dict[str, str]:
    env = {
        **os.environ,
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "bimride.settings",
        "JOB_EXTRA_MODULES": "bench.common.jobtypes",
        "DEBUG": "false",  # as in production: DEBUG wraps every cursor to record its queries
        "BENCH_PIDFILE": str(pidfile),
        "PYTHONUNBUFFERED": "1",
    }
    if name.startswith("plain-"):
        env["DJANGO_SETTINGS_MODULE"] = "bench.jobs.settings_plain"
        env["BENCH_PLAIN_PROFILE"] = name.removeprefix("plain-")
    env.pop("JOB_LISTEN_DATABASE_URL", None)
    if name in POOLED:
        # The system talks through the pooler; the benchmark's own bookkeeping goes direct.
        env |= {"DATABASE_URL": pooled, "DB_TRANSACTION_POOLER": "1", "BENCH_DIRECT_URL": url}
        if name == "ours-pooled":
            env["JOB_LISTEN_DATABASE_URL"] = url  # the workers' LISTEN, straight to PostgreSQL
    return env


def run_round(
    name: str, number: int, url: str, deadline: float, quick: bool, tmp: Path, pooled: str = ""
) -> dict:
    """Run one round of one system in a child process; stop it (and what it started) if it
    overruns its deadline."""
    out, pidfile = tmp / f"{name}-{number}.json", tmp / f"{name}-{number}.pids"
    command = [sys.executable, "-m", "bench.jobs.suites", name, "--out", str(out)]
    command += ["--round", str(number)] + (["--quick"] if quick else [])
    child = subprocess.Popen(command, cwd=ROOT, env=suite_env(name, url, pidfile, pooled))
    try:
        child.wait(timeout=max(1.0, deadline + KILL_GRACE - time.time()))
    except subprocess.TimeoutExpired:
        log(f"{name}: over its time budget; stopping it")
    finally:
        if child.poll() is None:
            child.send_signal(signal.SIGTERM)  # its finally blocks stop its workers
            try:
                child.wait(timeout=20)
            except subprocess.TimeoutExpired:
                child.kill()
                child.wait()
        killed = kill_leftovers(pidfile)
        if killed:
            log(f"{name}: killed leftover process groups {killed}")
    if child.returncode != 0 or not out.exists():
        return {"system": name, "error": f"round {number + 1} exited with {child.returncode}"}
    return json.loads(out.read_text())


def merge(results: dict, name: str, out: dict) -> None:
    suite = results.setdefault(name, {"system": name, "title": out.get("title", name)})
    if "error" in out:
        suite.setdefault("errors", []).append(out["error"])
        return
    suite["title"] = out["title"]
    if "listen" in out:
        suite["listen"] = out["listen"]
    for measurement in MEASUREMENTS:
        if measurement in out:
            suite.setdefault(measurement, {"runs": []})["runs"].append(out[measurement])


def combine(runs: list[dict]) -> dict:
    """Each statistic's median across runs, plus the runs themselves."""
    keys = {k for r in runs for k, v in r.items() if isinstance(v, int | float)}
    combined = {}
    for key in sorted(keys):
        values = [r[key] for r in runs if isinstance(r.get(key), int | float)]
        combined[key] = statistics.median(values)
    return {**combined, "runs": runs}


def next_round_estimate(outs: dict[str, dict]) -> float:
    """Seconds the next round will take: this one's, less what only the first round measures."""
    total = 0.0
    for name, out in outs.items():
        walls = out.get("walls", {})
        total += out.get("wall_s", CHILD_LIMIT) + 3.0  # the child's own start-up
        if name.startswith("plain-"):
            total -= walls.get("defer", 0.0)
        if name == "plain-defaults":
            total -= walls.get("drain", 0.0)
    return total


def _terminate(signum, frame):
    raise SystemExit(f"bench: stopped by signal {signum}")  # run_round's finally cleans up


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(prog="python -m bench.jobs", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer jobs, one run each")
    parser.add_argument("--only", choices=sorted(GROUPS), help="measure only this system")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        raise SystemExit("bench: set DATABASE_URL (make bench-jobs does)")
    started = time.time()
    code_at_start = versions("").get("commit")
    admin, url, pg_version = prepare_database(base_url)
    names = GROUPS[args.only] if args.only else ORDER
    notes = []
    if "celery" in names and (why := redis_answers()):
        notes.append(why)
        names = [n for n in names if n != "celery"]
    mode = "quick" if args.quick else "full"
    end = time.time() + TOTAL[mode]
    results, loads = {}, {"start": load_average()}
    if loads["start"] > 1.0:
        log(f"the machine is busy (load {loads['start']}): figures will be skewed")
    pooler = PgBouncer(url) if set(names) & set(POOLED) else None
    try:
        pooled = pooler.start() if pooler else ""
        with tempfile.TemporaryDirectory(prefix="bench-jobs-") as tmp:
            for number in range(ROUNDS[mode]):
                log(f"== round {number + 1} of {ROUNDS[mode]}")
                outs = {}
                for name in names:
                    deadline = min(end, time.time() + CHILD_LIMIT)
                    outs[name] = run_round(
                        name, number, url, deadline, args.quick, Path(tmp), pooled
                    )
                    merge(results, name, outs[name])
                loads[f"round {number + 1}"] = load_average()
                estimate = next_round_estimate(outs)
                if number + 1 < ROUNDS[mode] and time.time() + estimate > end:
                    notes.append(
                        f"Stopped after {number + 1} round(s) to stay within the time bound"
                        f" (the next would take ~{estimate:.0f} s)."
                    )
                    break
    finally:
        admin.close()
        if pooler:
            pooler.stop()
    for suite in results.values():
        for measurement in MEASUREMENTS:
            if measurement in suite:
                suite[measurement] = combine(suite[measurement]["runs"])
    document = document_of(
        mode=mode,
        started=started,
        pg_version=pg_version,
        code_at_start=code_at_start,
        loads=loads,
        notes=notes,
        suites=results,
    )
    publish("jobs", document, render(document))


if __name__ == "__main__":
    main()
