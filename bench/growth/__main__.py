"""`make bench-growth`: does the ledger stay fast at tens of millions of rows?

Usage: ``python -m bench.growth [--quick]`` with DATABASE_URL set (the Makefile exports it). It
uses the database and the lock of `make bench-jobs` (`bimride_bench`: the two never run at once)
and our job system only (`bench.jobs.systems.Ours`: no-op jobs, real qcluster workers).

The ledger is filled with set-based SQL (not by running jobs) to each size in turn — empty,
1 million and 10 million finished jobs, each with the three audit rows a successful run leaves,
finished evenly over the retention window — and vacuumed as autovacuum would. At each size,
medians of 3:

- the job path: enqueue in a transaction (median of 2,000), drain of 5,000 no-op jobs with 2
  workers, idle pickup p95 (200 jobs 20 ms apart);
- the reads: the admin's job list (first page, a state filter, a search by id and by
  idempotency key), the queue overview, a job's page with its audit trail, the dead letters,
  `GET /api/ops/queues`, a `/metrics` scrape, `GET /api/rides/{id}` and `manage.py jobs stats`.

Then, at the largest size, retention: the pruner deletes the oldest day of finished jobs and
their events while 5,000-job drains are measured (3, or as many as fit while it runs); then two
more cycles of one new day written and the oldest day pruned (these at full speed, to bound the
run), each followed by a vacuum; table and index sizes before, after the first cycle and after
the third. Last, a backlog of 1 million due jobs is added: the reads again, enqueue, and the
drain of its first 5,000 jobs. `--quick`: 20,000 and 100,000 rows, a 20,000 backlog, smaller
batches, one retention cycle less. It prints markdown tables and writes them to
bench/results/growth.md and growth.json; every process it starts is stopped, killed if need be.
"""

import argparse
import os
import signal
import statistics
import tempfile
import time
from datetime import timedelta
from pathlib import Path

import django
from django.conf import settings

from bench.common.procs import kill_leftovers
from bench.common.runs import document_of, load_average, log, prepare_database, publish, versions
from bench.growth import ledger
from bench.jobs.report import busy_warning
from bench.jobs.systems import Ours, sql

SIZES = {
    "full": {
        "history": (0, 1_000_000, 10_000_000),
        "backlog": 1_000_000,
        "enqueue": 2000,
        "drain": 5000,
        "pickup": 200,
        "rounds": 3,
        "cycles": 3,
    },
    "quick": {
        "history": (0, 20_000, 100_000),
        "backlog": 20_000,
        "enqueue": 300,
        "drain": 1000,
        "pickup": 50,
        "rounds": 3,
        "cycles": 2,
    },
}
READ_TARGET_MS = 300
JOB_PATH_TARGET = 1.25  # × the empty tables
PRUNE_DRAIN_TARGET = 0.9  # the drain while pruning, × without
BLOAT_TARGET = 1.2  # sizes after the last cycle, × after the first


def short(n: int) -> str:
    if n >= 1_000_000 and n % 1_000_000 == 0:
        return f"{n // 1_000_000}M"
    return f"{n // 1000}k" if n and n % 1000 == 0 else str(n)


def median_of(runs: list[dict], key: str) -> float | None:
    values = [run[key] for run in runs if run.get(key) is not None]
    return statistics.median(values) if values else None


def job_path(size: dict) -> dict:
    """The job path's figures at the ledger's current size: medians of `rounds` runs."""
    rounds = size["rounds"]
    enqueues = [ledger.enqueue_ms(size["enqueue"]) for _ in range(rounds)]
    drains = [ledger.drain(size["drain"]) for _ in range(rounds)]
    pickups = [ledger.pickup(size["pickup"]) for _ in range(rounds)]
    return {
        "enqueue_p50_ms": median_of(enqueues, "p50_ms"),
        "drain_jobs_s": median_of(drains, "jobs_s"),
        "drain_rows_written_per_job": median_of(drains, "rows_written_per_job"),
        "pickup_p50_ms": median_of(pickups, "p50_ms"),
        "pickup_p95_ms": median_of(pickups, "p95_ms"),
        "runs": {"enqueue": enqueues, "drain": drains, "pickup": pickups},
    }


def grow_to(target: int, stored: int, end) -> None:
    """Add finished jobs until `target` are stored, spread over the retention window up to
    `end`, then vacuum."""
    if target > stored:
        t = time.monotonic()
        ledger.seed_history(target - stored, end=end, span=settings.JOB_RETENTION)
        log(f"stored {target - stored:,} finished jobs in {time.monotonic() - t:.0f} s")
    t = time.monotonic()
    ledger.vacuum()
    log(f"vacuumed in {time.monotonic() - t:.0f} s")


def measure_size(label: str, size: dict, reader: ledger.Reader, notes: list) -> dict:
    log(f"{label}: the job path ({size['rounds']} rounds)")
    result = job_path(size)
    log(
        f"{label}: enqueue {result['enqueue_p50_ms']:.2f} ms, drain {result['drain_jobs_s']:.0f}"
        f" jobs/s, pickup p95 {result['pickup_p95_ms']:.1f} ms"
    )
    log(f"{label}: the reads")
    result["reads_ms"] = reader.measure(size["rounds"])
    result["sizes"] = ledger.table_sizes()
    slow = {k: round(v) for k, v in result["reads_ms"].items() if v > READ_TARGET_MS}
    log(f"{label}: reads over {READ_TARGET_MS} ms: {slow or 'none'}")
    return result


def retention(size: dict, end, stored: int, notes: list) -> dict:
    """Prune the oldest day while drains are measured; then more cycles of a new day written
    and the oldest pruned; sizes before, after the first cycle and after the last."""
    day = timedelta(days=1)
    oldest = end - settings.JOB_RETENTION
    per_day = round(stored * day / settings.JOB_RETENTION)
    out = {"per_day": per_day, "sizes": {"before": ledger.table_sizes()}, "cycles": []}
    # cycle 1: the pruner at its settings, drains measured meanwhile
    backlog_first = ledger.seed_backlog(size["drain"])
    run = ledger.PruneRun(before=oldest + day)
    run.start()
    drains = []
    while run.is_alive() and len(drains) < size["rounds"]:
        time.sleep(1.0)
        drains.append(_drain_seeded(backlog_first, size["drain"]))
        if run.is_alive() and len(drains) < size["rounds"]:
            backlog_first = ledger.seed_backlog(size["drain"])
    run.join()
    if run.error:
        raise SystemExit(f"bench: the pruner failed: {run.error!r}")
    if len(drains) < size["rounds"]:
        notes.append(f"retention: the prune ended after {len(drains)} drain(s) measured during it.")
    out["cycles"].append(
        {
            "duty": settings.JOB_PRUNE_DUTY,
            "seconds": run.seconds,
            **run.counts,
            "drains": drains,
            "drain_jobs_s": median_of(drains, "jobs_s"),
        }
    )
    log(f"retention: day 1 pruned ({run.counts}) in {run.seconds:.0f} s")
    ledger.vacuum()
    out["sizes"]["after 1 cycle"] = ledger.table_sizes()
    for cycle in range(2, size["cycles"] + 1):
        ledger.seed_history(per_day, end=end, span=day)  # the newest day again: rows of today
        run = ledger.PruneRun(before=oldest + day * cycle, duty=1.0)
        run.run()
        log(f"retention: day {cycle} written and pruned ({run.counts}) in {run.seconds:.0f} s")
        out["cycles"].append({"duty": 1.0, "seconds": run.seconds, **run.counts})
        ledger.vacuum()
    out["sizes"][f"after {size['cycles']} cycles"] = ledger.table_sizes()
    return out


def _drain_seeded(first_id: int, n: int) -> dict:
    """Drain the `n` jobs seeded from `first_id`, then take them away."""
    system = Ours()
    t0 = time.time()
    service = system.start()
    try:
        end = time.monotonic() + 120
        while time.monotonic() < end and ledger.finished_since(first_id) < n:
            time.sleep(0.1)
        seconds = time.time() - t0
    finally:
        service.stop()
    done = ledger.finished_since(first_id)
    ledger.drop_from(first_id)
    return {"jobs_s": done / seconds, "done": done, "n": n, "s": seconds}


def with_backlog(size: dict, reader: ledger.Reader) -> dict:
    """A backlog of due jobs on top: reads, enqueue and the drain of its first jobs."""
    t = time.monotonic()
    first = ledger.seed_backlog(size["backlog"])
    ledger.vacuum()
    log(f"backlog: {size['backlog']:,} due jobs written in {time.monotonic() - t:.0f} s")
    result = {"reads_ms": reader.measure(size["rounds"])}
    enqueues = [ledger.enqueue_ms(size["enqueue"]) for _ in range(size["rounds"])]
    result["enqueue_p50_ms"] = median_of(enqueues, "p50_ms")
    drains = [ledger.drain_from_backlog(size["drain"]) for _ in range(size["rounds"])]
    result["drain_jobs_s"] = median_of(drains, "jobs_s")
    result["runs"] = {"enqueue": enqueues, "drain": drains}
    ledger.drop_from(first)
    return result


# --- report -------------------------------------------------------------------------------------


def fmt_ms(ms: float | None) -> str:
    if ms is None:
        return "–"
    return f"{ms:,.0f} ms" if ms >= 100 else f"{ms:.1f} ms" if ms >= 10 else f"{ms:.2f} ms"


def render(document: dict) -> str:
    sizes = document["sizes"]
    labels = list(sizes)
    first, last = labels[0], labels[-1]
    backlog = document.get("backlog")
    head = ["measured", *labels]
    if backlog:
        head.append(f"{last} + {short(document['backlog_jobs'])} due")
    head += [f"{last} / {first}", "target"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]

    def job_row(title, key, unit, better_high=False):
        values = [sizes[label].get(key) for label in labels]
        cells = [fmt_ms(v) if unit == "ms" else f"{v:,.0f}/s" for v in values]
        if backlog:
            extra = backlog.get(key)
            cells.append(
                "–" if extra is None else fmt_ms(extra) if unit == "ms" else f"{extra:,.0f}/s"
            )
        ratio = values[-1] / values[0] if values[0] and values[-1] else None
        ok = ratio is not None and (
            ratio >= 1 / JOB_PATH_TARGET if better_high else ratio <= JOB_PATH_TARGET
        )
        bound = 1 / JOB_PATH_TARGET if better_high else JOB_PATH_TARGET
        target = f"{'≥' if better_high else '≤'} {bound:.2f}×"
        mark = "" if ratio is None else (" ✓" if ok else " ✗")
        lines.append(
            f"| {title} | {' | '.join(cells)} | {ratio:.2f}×{mark} | {target} |"
            if ratio
            else f"| {title} | {' | '.join(cells)} | – | {target} |"
        )

    job_row("enqueue in a transaction, median", "enqueue_p50_ms", "ms")
    job_row(
        "drain 5,000 no-op jobs, 2 workers" if document["mode"] == "full" else "drain, 2 workers",
        "drain_jobs_s",
        "rate",
        True,
    )
    job_row("idle pickup p95", "pickup_p95_ms", "ms")
    for read in sizes[first]["reads_ms"]:
        values = [sizes[label]["reads_ms"][read] for label in labels]
        cells = [fmt_ms(v) for v in values]
        if backlog:
            cells.append(fmt_ms(backlog["reads_ms"].get(read)))
        worst = max(values + ([backlog["reads_ms"][read]] if backlog else []))
        mark = "✓" if worst < READ_TARGET_MS else "✗"
        ratio = values[-1] / values[0]
        lines.append(
            f"| {read} | {' | '.join(cells)} | {ratio:.2f}× | < {READ_TARGET_MS} ms {mark} |"
        )
    return "\n".join(
        [*heading(document), *lines, "", *retention_lines(document), "", *footnotes(document), ""]
    )


def retention_lines(document: dict) -> list[str]:
    kept = document.get("retention")
    if not kept:
        return []
    last = list(document["sizes"])[-1]
    base = document["sizes"][last]["drain_jobs_s"]
    lines = [
        f"## Retention at {last} finished jobs ({kept['per_day']:,} a day)",
        "",
        "| cycle | pruner's duty | jobs deleted | events deleted | seconds | drain meanwhile"
        " | vs no prune |",
        "|---|---|---|---|---|---|---|",
    ]
    for number, cycle in enumerate(kept["cycles"], 1):
        drain = cycle.get("drain_jobs_s")
        ratio = f"{drain / base:.2f}×" if drain and base else "–"
        lines.append(
            f"| {number} | {cycle['duty']:.2f} | {cycle['jobs']:,} | {cycle['events']:,} |"
            f" {cycle['seconds']:.0f} | {f'{drain:,.0f}/s' if drain else '–'} | {ratio} |"
        )
    lines += [
        "",
        "| bytes | " + " | ".join(kept["sizes"]) + " |",
        "|---|" + "---|" * len(kept["sizes"]),
    ]
    names = list(next(iter(kept["sizes"].values())))
    for name in names:
        cells = [f"{sizes[name] / 2**20:,.0f} MB" for sizes in kept["sizes"].values()]
        lines.append(f"| {name} | {' | '.join(cells)} |")
    snapshots = list(kept["sizes"].values())
    total = [sum(s.values()) for s in snapshots]
    lines.append(f"| all | {' | '.join(f'{t / 2**20:,.0f} MB' for t in total)} |")
    lines.append("")
    lines.append(
        f"After the last cycle / after the first: {total[-1] / total[1]:.2f}× (target ≤"
        f" {BLOAT_TARGET}×)."
    )
    return lines


def heading(document: dict) -> list[str]:
    v = document["versions"]
    code = v.get("commit", "?")
    if v.get("uncommitted_in_bimride"):
        code += f" + {v['uncommitted_in_bimride']} uncommitted file(s) in bimride/"
    loads = ", ".join(f"{k} {x:.2f}" for k, x in document["load_average"].items())
    return [
        f"# The ledger at size ({document['mode']} run, {document['generated_at']})",
        "",
        f"PostgreSQL {v.get('postgresql')}, Python {v.get('python')}, Django {v.get('django')},"
        f" django-q2 {v.get('django-q2')}, psycopg {v.get('psycopg')}; {v.get('cores')} cores;"
        f" {document['wall_s']} s wall; code {code}; 1-min load average {loads}.",
        "",
        *busy_warning(document),
        "Columns: finished jobs stored (3 audit rows each). Medians of"
        f" {document['rounds']} runs; reads are the view's time in-process (Django's test client,"
        " signed-in staff), no HTTP.",
        "",
    ]


def footnotes(document: dict) -> list[str]:
    notes = [
        "Enqueue: one job per transaction as a request writes it, incl. the commit. Drain: jobs"
        " done / seconds from starting the cluster (start-up included) to the last job"
        " finished. Idle pickup: enqueue → start, jobs sent 20 ms apart to idle workers.",
        "The admin's counts: the unfiltered list shows PostgreSQL's estimate (\"about N"
        ' (estimated)"), a filtered one counts up to 10,000 ("more than 10,000").',
        "Retention: the first cycle runs the pruner with its settings (JOB_PRUNE_DUTY) while"
        " drains are measured; later cycles write a new day and prune at full speed, to bound"
        " the run; each cycle ends with a VACUUM, as autovacuum would run.",
    ]
    return [f"- {note}" for note in notes + document["notes"]]


# --- main ---------------------------------------------------------------------------------------


def use_database(url: str, pidfile: Path) -> None:
    """Point this process (and the workers it starts) at the benchmark database."""
    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "bimride.settings",
            "JOB_EXTRA_MODULES": "bench.common.jobtypes",
            "DEBUG": "false",  # as in production: DEBUG wraps every cursor to record its queries
            "BENCH_PIDFILE": str(pidfile),
            "ALLOWED_HOSTS": "testserver,localhost",
            "LOG_LEVEL": "WARNING",
        }
    )
    django.setup()


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
    raise SystemExit(f"bench: stopped by signal {signum}")  # unwinds through every finally


def run(size: dict, notes: list, loads: dict) -> dict:
    Ours().reset()
    sql("TRUNCATE rides_ride, jobs_schedulerun CASCADE")
    reader = ledger.Reader()
    end = sql("SELECT now()")[0][0]
    results, stored = {}, 0
    for target in size["history"]:
        grow_to(target, stored, end)
        stored = target
        results[short(target)] = measure_size(short(target), size, reader, notes)
        loads[short(target)] = load_average()
    document = {"sizes": results, "rounds": size["rounds"], "backlog_jobs": size["backlog"]}
    document["retention"] = retention(size, end, stored, notes)
    loads["retention"] = load_average()
    document["backlog"] = with_backlog(size, reader)
    loads["backlog"] = load_average()
    return document


def reads_again(size: dict, notes: list, loads: dict) -> dict:
    """The reads (and the backlog's figures) again, on the ledger a full run left, topped up to
    its largest size: for a change to the read path, without filling and pruning anew."""
    target = size["history"][-1]
    stored = sql("SELECT count(*) FROM jobs_job WHERE state = 'succeeded'")[0][0]
    grow_to(target, stored, sql("SELECT now()")[0][0])
    reader = ledger.Reader()
    label = short(target)
    log(f"{label}: the reads")
    result = {"sizes": {label: {"reads_ms": reader.measure(size["rounds"])}}}
    loads[label] = load_average()
    result["backlog"] = with_backlog(size, reader)
    result["backlog_jobs"] = size["backlog"]
    loads["backlog"] = load_average()
    notes.append(
        f"Reads only: on the ledger the last full run left ({stored:,} finished jobs), topped"
        f" up to {target:,}."
    )
    return result


def render_reads(document: dict) -> str:
    (label,) = document["sizes"]
    reads, backlog = document["sizes"][label]["reads_ms"], document["backlog"]
    head = f"| measured | {label} | {label} + {short(document['backlog_jobs'])} due | target |"
    lines = [head, "|---|---|---|---|"]
    for read, ms in reads.items():
        worst = max(ms, backlog["reads_ms"][read])
        mark = "✓" if worst < READ_TARGET_MS else "✗"
        lines.append(
            f"| {read} | {fmt_ms(ms)} | {fmt_ms(backlog['reads_ms'][read])}"
            f" | < {READ_TARGET_MS} ms {mark} |"
        )
    lines.append(f"| enqueue in a transaction, median | | {fmt_ms(backlog['enqueue_p50_ms'])} | |")
    lines.append(f"| drain, 2 workers, from the backlog | | {backlog['drain_jobs_s']:,.0f}/s | |")
    document = {**document, "rounds": document.get("rounds", 3)}
    return "\n".join([*heading(document), *lines, "", *footnotes(document), ""])


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, a few minutes")
    parser.add_argument(
        "--reads-again",
        action="store_true",
        help="only the reads and the backlog, on the ledger the last full run left",
    )
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        raise SystemExit("bench: set DATABASE_URL (make bench-growth does)")
    started = time.time()
    code_at_start = versions("").get("commit")
    mode = "quick" if args.quick else "full"
    admin, url, pg_version = prepare_database(base_url)
    notes, loads = [], {"start": load_average()}
    if loads["start"] > 1.0:
        log(f"the machine is busy (load {loads['start']}): figures will be skewed")
    pidfile = Path(tempfile.gettempdir()) / f"bench-growth-{os.getpid()}.pids"
    try:
        use_database(url, pidfile)
        measure = reads_again if args.reads_again else run
        results = measure(SIZES[mode], notes, loads)
    finally:
        killed = kill_leftovers(pidfile)
        if killed:
            log(f"killed leftover process groups {killed}")
        admin.close()
    document = document_of(
        mode=mode,
        started=started,
        pg_version=pg_version,
        code_at_start=code_at_start,
        loads=loads,
        notes=notes,
        **results,
    )
    if args.reads_again:
        publish("growth-reads", document, render_reads(document))
    else:
        publish("growth", document, render(document))


if __name__ == "__main__":
    main()
