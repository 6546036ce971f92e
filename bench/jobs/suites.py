"""One round of one system's measurements, in a child process of `bench.jobs` with that
system's settings. `bench.jobs` interleaves rounds of the systems, so a load that comes and goes
on the machine falls on all of them alike.

Usage: ``python -m bench.jobs.suites ours|plain-defaults|plain-best|celery --out FILE [--quick]
[--round N]``. Writes one run of each measurement (and its wall time) as a JSON object.
"""

import argparse
import json
import logging
import os
import random
import signal
import sys
import time

import django

from bench.common.procs import LOG_DIR

SIZES = {  # (a) enqueues, (b) backlog, (c) idle jobs, (d) deferred jobs, rounds
    "full": {"enqueue": 2000, "drain": 5000, "pickup": 200, "defer": 100, "rounds": 3},
    "quick": {"enqueue": 300, "drain": 1000, "pickup": 50, "defer": 30, "rounds": 1},
}
SUITES = ("ours", "ours-pooled", "ours-polling", "plain-defaults", "plain-best", "celery")
# Through the pooler without the workers' direct LISTEN: only what polling changes is measured.
WAITING_ONLY = {"ours-polling"}
DRAIN_CAP = 45.0  # seconds a drain may run before it is reported as partial
# Plain django-q2 with its defaults drains ~20 jobs/s: one capped drain, in the first round.
SLOW_DRAIN = {"plain-defaults": 30.0}
POLL = 0.1
GAP = 0.02  # between idle-pickup enqueues


def percentile(values: list[float], p: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None for no values."""
    if not values:
        return None
    data = sorted(values)
    k = (len(data) - 1) * p / 100
    lo, hi = int(k), min(int(k) + 1, len(data) - 1)
    return data[lo] + (data[hi] - data[lo]) * (k - lo)


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def wait_for(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            return False
        time.sleep(POLL)
    return True


def measure_enqueue(system, n: int) -> dict:
    system.reset()
    for i in range(50):  # warm: connections, imports, plan caches
        system.request_enqueue(i)
    times, before = [], system.counters()
    for i in range(n):
        t = time.perf_counter()
        system.request_enqueue(i)
        times.append((time.perf_counter() - t) * 1000)
    work = per_job(before, system.counters(), n)
    system.reset()
    return {"p50_ms": percentile(times, 50), "p95_ms": percentile(times, 95), "n": n, **work}


def measure_drain(system, n: int, cap: float) -> dict:
    system.reset()
    system.fill(n)
    system.analyze()
    before = system.counters()
    t0 = time.time()
    service = system.start()
    first = last = None
    try:
        while True:
            done, now = system.done(), time.time()
            if done and first is None:
                first = now - t0
            if done >= n or now - t0 > cap:
                last = now - t0
                break
            time.sleep(POLL)
    finally:
        service.stop()
    work = per_job(before, system.counters(), done)
    system.reset()
    rate = done / last
    return {"jobs_s": rate, "first_done_s": first or last, "done": done, "n": n, "s": last, **work}


def per_job(before: dict | None, after: dict | None, n: int) -> dict:
    """Database work per job between two counter readings (none for Redis)."""
    if before is None or after is None or not n:
        return {}
    return {f"{k}_per_job": (after[k] - before[k]) / n for k in before}


def idle_batch(system, n: int, wait: float) -> dict:
    batch = system.batch()
    for i in range(n):
        system.send_now(batch, i)
        time.sleep(GAP)
    wait_for(lambda: len(system.delays(batch, "pickup")) >= n, wait)
    ms = [d * 1000 for d in system.delays(batch, "pickup")]
    return {
        "p50_ms": percentile(ms, 50),
        "p95_ms": percentile(ms, 95),
        "p99_ms": percentile(ms, 99),
        "n": len(ms),
        "sent": n,
    }


def deferred_batch(system, n: int) -> dict:
    batch = system.batch()
    spread = system.defer_spread
    for i in range(n):
        system.send_later(batch, i, random.uniform(1.0, 3.0))
        time.sleep(spread / n)
    tick = 30.0 if spread >= 30 else 0.0  # plain django-q2 fires ONCE schedules on a 30 s tick
    wait_for(lambda: len(system.delays(batch, "lateness")) >= n, 3.0 + tick + 15.0)
    ms = [d * 1000 for d in system.delays(batch, "lateness")]
    return {"p50_ms": percentile(ms, 50), "p95_ms": percentile(ms, 95), "n": len(ms), "sent": n}


def warm_up(system) -> None:
    """Run a few jobs through freshly started workers, then let them go idle."""
    batch = system.batch()
    for i in range(3):
        system.send_now(batch, i)
    if not wait_for(lambda: len(system.delays(batch, "pickup")) >= 3, 60):
        raise RuntimeError(f"{system.title}: workers ran no job within 60 s")
    time.sleep(1.0)


def timed(walls: dict, name: str, measure):
    started = time.monotonic()
    try:
        return measure()
    finally:
        walls[name] = time.monotonic() - started


def run_round(name: str, system, size: dict, first: bool) -> dict:
    """One run of each measurement. Plain django-q2's deferred jobs (a 30 s scheduler tick) and
    its slow default drain are measured in the first round only."""
    out, walls = {"system": system.key, "title": system.title}, {}
    if name.startswith("ours"):  # do the workers LISTEN on their own direct connection?
        from django.conf import settings

        listen = os.environ.get("JOB_LISTEN_DATABASE_URL")
        out["listen"] = bool(listen) and hasattr(settings, "JOB_LISTEN_DATABASE_URL")
    if name not in WAITING_ONLY:
        log(f"{system.title}: (a) enqueue inside atomic(), {size['enqueue']} jobs")
        out["enqueue"] = timed(walls, "enqueue", lambda: measure_enqueue(system, size["enqueue"]))
    if name not in WAITING_ONLY and (first or name not in SLOW_DRAIN):
        cap = SLOW_DRAIN.get(name, DRAIN_CAP)
        log(f"{system.title}: (b) drain {size['drain']} jobs with 2 workers (cap {cap:.0f} s)")
        out["drain"] = timed(walls, "drain", lambda: measure_drain(system, size["drain"], cap))
    log(f"{system.title}: (c) idle pickup, {size['pickup']} jobs {GAP * 1000:.0f} ms apart")
    system.reset()
    started = time.monotonic()
    service = system.start()
    try:
        warm_up(system)
        walls["start"] = time.monotonic() - started
        out["pickup"] = timed(walls, "pickup", lambda: idle_batch(system, size["pickup"], 30))
        if first or system.defer_spread < 30:
            log(f"{system.title}: (d) deferred lateness, {size['defer']} jobs due in 1-3 s")
            out["defer"] = timed(walls, "defer", lambda: deferred_batch(system, size["defer"]))
    finally:
        service.stop()
        system.reset()
    out["walls"] = walls
    return out


def make_system(name: str):
    from bench.jobs import systems

    if name.startswith("ours"):
        return systems.Ours(key=name)
    if name.startswith("plain-"):
        return systems.PlainQ2(name.removeprefix("plain-"))
    return systems.CeleryRedis()


def quiet_logs(suite: str) -> None:
    """Send this process's log lines (plain django-q2 logs each enqueue at INFO) to a file, not
    the terminal: still formatted and written, as in a web process."""
    path = LOG_DIR / f"bench-suite-{suite}.log"
    for handler in logging.getLogger().handlers:
        if isinstance(handler, logging.StreamHandler) and handler.stream is sys.stderr:
            handler.setStream(open(path, "w"))  # noqa: SIM115 - lives as long as the process


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
    raise SystemExit(f"stopped by signal {signum}")  # unwinds through every finally


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.jobs.suites")
    parser.add_argument("suite", choices=SUITES)
    parser.add_argument("--out", required=True)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--round", type=int, default=0)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, _terminate)
    django.setup()
    quiet_logs(args.suite)
    size = SIZES["quick" if args.quick else "full"]
    started = time.monotonic()
    result = run_round(args.suite, make_system(args.suite), size, first=args.round == 0)
    result["wall_s"] = time.monotonic() - started
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)


if __name__ == "__main__":
    sys.exit(main())
