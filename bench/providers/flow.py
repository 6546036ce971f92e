"""Part (b) of `make bench-providers`: the ride flow with the providers as slow as the real ones,
against the production layout at default settings, one release per run.

Each run is `bench.api`'s: a fresh copy of the release's migrated and seeded database, its
gunicorn (3 sync workers) and one `qcluster` per queue started by `bench.api.setup`, the
Stripe stand-in answering every request `stripe_latency` s late and the email (Postmark)
stand-in every send `email_latency` s late, and `bench.api.load` sending the ride flow at
8 requests per ride (create, accept, the rider's read, start, complete, 3 location pings).
After the load the run waits until every completed ride is captured and receipted, at most
`drain` seconds, then reads from the database, per completed ride: completed → captured (the
ride payment's first `captured` PaymentEvent) and completed → receipt sent (the receipt
Notification's `sent_at`). A ride not captured (or receipted) by then counts as infinitely
late in the percentiles, so a p95 it reaches reads "> drain". Sampled every 0.5 s: the summed
RSS of web and workers, and the sessions on the database.
"""

import json
import math
import os
import sys
import time
from datetime import UTC, datetime
from types import SimpleNamespace

import psycopg

from bench.api.compare import problems
from bench.api.report import percentile, summarize
from bench.api.setup import (
    BENCH_DB,
    QUEUE_SERVICES,
    QUEUES,
    Arm,
    arm_env,
    fresh_database,
    start_services,
    stop_services,
    warm_up,
)
from bench.common.procs import Service
from bench.providers.jobs import worker_settings
from bench.providers.peaks import Peaks, log

REQUESTS_PER_RIDE = 8  # bench.api.load's steps

RIDE_TIMES = """
SELECT r.completed_at,
       (SELECT min(e.at) FROM payments_paymentevent e
          JOIN payments_payment p ON p.id = e.payment_id
         WHERE p.ride_id = r.id AND p.kind = 'ride' AND e.new = 'captured'),
       (SELECT min(n.sent_at) FROM notifications_notification n
         WHERE n.ride_id = r.id AND n.template = 'receipt')
  FROM rides_ride r
 WHERE r.completed_at IS NOT NULL
"""


def ride_times(url: str) -> list[tuple[datetime, datetime | None, datetime | None]]:
    """(completed, captured, receipt sent) of every completed ride."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(RIDE_TIMES).fetchall()


def outcome(rows: list, load_end: datetime, drain: float) -> dict:
    """The figures of a run from its rides' times (seconds; missing ones as infinity)."""

    def delays(column: int) -> list[float]:
        return [
            (row[column] - row[0]).total_seconds() if row[column] is not None else math.inf
            for row in rows
        ]

    def seconds(value: float | None) -> float | str | None:
        if value is None:
            return None
        return f"> {drain:g}" if math.isinf(value) else round(value, 2)

    captured, receipted = delays(1), delays(2)
    return {
        "rides_completed": len(rows),
        "captured_by_end_of_load": sum(1 for r in rows if r[1] is not None and r[1] <= load_end),
        "captured": sum(1 for d in captured if not math.isinf(d)),
        "receipted": sum(1 for d in receipted if not math.isinf(d)),
        "captured_p50_s": seconds(percentile(captured, 50)),
        "captured_p95_s": seconds(percentile(captured, 95)),
        "receipt_p50_s": seconds(percentile(receipted, 50)),
        "receipt_p95_s": seconds(percentile(receipted, 95)),
    }


def settled(url: str) -> bool:
    """Every completed ride captured and receipted."""
    return all(captured and sent for _, captured, sent in ride_times(url))


def run_flow(arm: Arm, args, env: dict) -> dict:
    """One run of the ride flow against `arm`; its figures."""
    admin, url, tmp = env["admin"], env["url"], env["tmp"]
    rate = args.rides * REQUESTS_PER_RIDE
    name = f"{arm.name} at {args.rides:g} rides/s"
    fresh_database(admin, arm)
    layout = SimpleNamespace(web_workers=3, worker_class="sync", threads=0, web_args="", env=[])
    standins = {
        "STRIPE_STANDIN_LATENCY": str(args.stripe_latency),
        "EMAIL_STANDIN_LATENCY": str(args.email_latency),
    }
    services, base = start_services(arm, url, layout, tmp, standin_env=standins)
    load = None
    try:
        product = [s for s in services if s.name == "api-web" or s.name in QUEUE_SERVICES]
        warm_up(base, arm.tokens["drivers"])
        plan = {"base": base, "rate": rate, "duration": args.duration, "timeout": 10.0}
        plan |= {"riders": arm.tokens["riders"], "drivers": arm.tokens["drivers"]}
        plan_path, out_path = tmp / "plan.json", tmp / "load.json"
        plan_path.write_text(json.dumps(plan))
        out_path.unlink(missing_ok=True)
        peaks = Peaks(product, database_url=url, database=BENCH_DB).start()
        log(f"{name} ({rate:g} requests/s) for {args.duration:g}s")
        nice = ["nice", "-n", "-5"] if os.geteuid() == 0 else []
        command = [*nice, sys.executable, "-m", "bench.api.load", str(plan_path), str(out_path)]
        load = Service("api-load", command, {})
        deadline = time.monotonic() + args.duration + 60
        while load.alive() and time.monotonic() < deadline:
            time.sleep(0.5)
        load_end = datetime.now(UTC)
        if load.alive() or not out_path.exists():
            raise RuntimeError(f"{name}: the load generator failed; see .data/bench-api-load.log")
        started = time.monotonic()
        while time.monotonic() - started < args.drain and not settled(url):
            time.sleep(2)
        drained = time.monotonic() - started
        figures = peaks.stop()
        rows = ride_times(url)
        summary = summarize(json.loads(out_path.read_text()), rate, args.duration)
        complete = summary["endpoints"]["complete"]
        result = {
            "arm": arm.name,
            "label": arm.label,
            "rate": rate,
            "rides_per_second": args.rides,
            "ok_rate": summary["ok_rate"],
            "errors": problems(summary),
            "complete_p95_ms": complete["p95_ms"],
            "p95_ms": {kind: e["p95_ms"] for kind, e in summary["endpoints"].items()},
            "waited_after_load_s": round(drained, 1),
            "workers": {queue: settings_of(arm, url, queue) for queue in QUEUES},
            **outcome(rows, load_end, args.drain),
            **figures,
        }
        log(
            f"{name}: {result['rides_completed']} rides, captured {result['captured']}, "
            f"receipted {result['receipted']}; capture p95 {result['captured_p95_s']} s, "
            f"receipt p95 {result['receipt_p95_s']} s; RSS {result['rss_mb']} MB, "
            f"{result['db_connections']} connections"
        )
        return result
    finally:
        if load is not None:
            load.stop()
        stop_services(services)


def settings_of(arm: Arm, url: str, queue: str) -> dict:
    return worker_settings({**arm_env(arm), "DATABASE_URL": url}, queue, cwd=arm.root)
