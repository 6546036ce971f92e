"""`make bench-growth`: does draining jobs cost more as the backlog or the stored history grows,
and how does it scale with worker processes?

Usage: ``python -m bench.growth [--quick]`` with DATABASE_URL set (the Makefile exports it). It
uses the database and the lock of `make bench-jobs` (`bimride_bench`: the two never run at once)
and our job system only (`bench.systems.Ours`: no-op jobs, real qcluster workers). Each scenario
drains a backlog of due jobs, timed from starting the cluster to the last job finished:

- baseline: 5,000 jobs with 2 workers, the tables otherwise empty;
- history: the same with 10,000 / 100,000 finished jobs already stored, each with the three
  audit rows a successful run leaves, spread over the retention window and vacuumed, as old
  rows are (django-q2 stores no rows for successes here: `save_limit` -1);
- backlog: 10,000 / 100,000 jobs, with the rates over their first and last 10 %;
- workers: 5,000 jobs with 1 and with 4 worker processes.

Rows are seeded with set-based SQL, a backlog's broker rows with the broker's own `push()` in
batches; a seeded job's rows are checked against those `enqueue()` writes before measuring.
The scenarios run in interleaved rounds, so load that comes and goes on the machine falls on
all alike; each figure is the median of 3 runs, the 100,000-job backlog's of one. `--quick`:
1,000-job drains, 10,000 and 20,000 rows, one round. Every drain has a time cap (a capped one
is reported as partial) and the whole run a time budget. It prints a markdown table and writes
it to bench/results/growth.md and growth.json; every process it starts is stopped, killed if
need be.
"""

import argparse
import os
import signal
import socket
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import django
from django.conf import settings

from bench.jobs import (
    combine,
    document_of,
    load_average,
    log,
    prepare_database,
    publish,
    versions,
)
from bench.procs import kill_leftovers
from bench.report import busy_warning, fmt
from bench.suites import DRAIN_CAP, per_job
from bench.systems import JOB_NAME, WORKERS, Ours, sql

SIZES = {
    "full": {"drain": 5_000, "rows": (10_000, 100_000), "rounds": 3},
    "quick": {"drain": 1_000, "rows": (10_000, 20_000), "rounds": 1},
}
TOTAL = {"full": 480.0, "quick": 150.0}  # seconds for all rounds; setup comes on top
MIN_RATE = 300  # jobs/s: a drain gets max(DRAIN_CAP, backlog / MIN_RATE) seconds
POLL = 0.25  # seconds between checks whether a drain is done
SPAN = 0.1  # share of a backlog whose rate is reported at its start and at its end


@dataclass(frozen=True)
class Scenario:
    label: str
    history: int  # finished jobs stored before the drain
    backlog: int  # due jobs drained
    workers: int = WORKERS
    once: bool = False  # measured in the first round only

    @property
    def cap(self) -> float:
        return max(DRAIN_CAP, self.backlog / MIN_RATE)


def short(n: int) -> str:
    return f"{n // 1000}k" if n % 1000 == 0 else f"{n:,}"


def scenarios(size: dict) -> list[Scenario]:
    n, (small, large) = size["drain"], size["rows"]
    return [
        Scenario("baseline", 0, n),
        Scenario(f"history {short(small)}", small, n),
        Scenario(f"history {short(large)}", large, n),
        Scenario(f"backlog {short(small)}", 0, small),
        Scenario(f"backlog {short(large)}", 0, large, once=True),
        Scenario("1 worker", 0, n, workers=1),
        Scenario("4 workers", 0, n, workers=4),
    ]


# --- seeding ------------------------------------------------------------------------------------


def job_fields() -> dict:
    """The columns `enqueue()` fills from the benchmark's job type."""
    from bimride.jobs import registry

    job_type = registry.get(JOB_NAME)
    return {
        "name": JOB_NAME,
        "queue": job_type.queue,
        "max_attempts": job_type.retry.max_attempts,
        "timeout": job_type.timeout,
    }


_HISTORY = """
WITH jobs AS (
    INSERT INTO jobs_job (name, queue, payload, state, attempts, max_attempts, timeout,
        trace_id, subject, created_at, run_at, dispatched_at, started_at, finished_at, worker,
        result, last_error)
    SELECT %(name)s, %(queue)s, jsonb_build_object('n', g - 1), 'succeeded', 1, %(max_attempts)s,
        %(timeout)s, '', '', t, t, t + interval '3 ms', t + interval '6 ms', t + interval '7 ms',
        %(host)s || ':' || (1000 + mod(g, %(workers)s)), '{}'::jsonb, ''
    FROM (SELECT g, now() - %(span)s * (1 - g::float8 / %(n)s) AS t
          FROM generate_series(1, %(n)s) AS g) AS s
    RETURNING id, created_at, started_at, finished_at, worker
)
INSERT INTO jobs_jobevent (job_id, state, attempt, at, worker, error, note)
SELECT id, e.state, e.attempt, e.at, e.worker, '', '' FROM jobs, LATERAL (VALUES
    ('queued', 0, created_at, ''), ('running', 1, started_at, worker),
    ('succeeded', 1, finished_at, worker)) AS e(state, attempt, at, worker)
ORDER BY e.at
"""


def seed_history(n: int) -> None:
    """Store `n` jobs that succeeded, finished over the retention window, as a real run leaves
    them: the job row and its queued, running and succeeded events; then vacuum them."""
    params = {**job_fields(), "n": n, "span": settings.JOB_RETENTION}
    sql(_HISTORY, {**params, "host": socket.gethostname(), "workers": WORKERS})
    sql("VACUUM (ANALYZE) jobs_job, jobs_jobevent")


_BACKLOG = """
rows AS (
    INSERT INTO jobs_job (name, queue, payload, state, attempts, max_attempts, timeout,
        trace_id, subject, created_at, run_at, dispatched_at, worker, last_error)
    SELECT %(name)s, %(queue)s, jsonb_build_object('n', g - 1), 'queued', 0, %(max_attempts)s,
        %(timeout)s, '', '', t, t, t, '', ''
    FROM (SELECT g, clock_timestamp() AS t FROM generate_series(1, %(n)s) AS g) AS s
    RETURNING id, queue, name, timeout, run_at, created_at
), events AS (
    INSERT INTO jobs_jobevent (job_id, state, attempt, at, worker, error, note)
    SELECT id, 'queued', 0, created_at, '', '', '' FROM rows
)
"""


def seed_backlog(n: int) -> int:
    """Write `n` due jobs as `enqueue()` does (the job row, its queued event and its broker row,
    with the broker's own SQL), in one statement. Returns the first job's id."""
    from bimride.jobs import broker

    return min(job_id for job_id, _ in sql(broker.pushing(_BACKLOG), {**job_fields(), "n": n}))


_JOB_SHAPE = (
    "SELECT to_jsonb(j) - ARRAY['id', 'created_at', 'run_at', 'dispatched_at']"
    " || jsonb_build_object('dispatched', dispatched_at >= created_at, 'due', run_at = created_at)"
    " FROM jobs_job j"
)
_EVENT_SHAPE = "SELECT to_jsonb(e) - ARRAY['id', 'job_id', 'at'] FROM jobs_jobevent e ORDER BY id"
_BROKER_SHAPE = (
    "SELECT q.key, q.lock = j.run_at, q.payload FROM django_q_ormq q, jobs_job j ORDER BY q.id"
)


def stored_shape() -> dict:
    """The rows of the one job stored, without what differs from job to job (ids, times)."""
    from django_q.signing import SignedPackage

    from bimride.jobs.broker import task_payload

    (job_id,) = sql("SELECT id FROM jobs_job")[0]
    pushed = []
    for key, due, payload in sql(_BROKER_SHAPE):
        task = SignedPackage.loads(task_payload(payload))
        task["name"] = task["name"].replace(f"#{job_id}", "#<id>")
        task["args"] = tuple("<id>" if arg == job_id else arg for arg in task["args"])
        pushed.append((key, due, {k: v for k, v in task.items() if k not in ("id", "started")}))
    return {"job": sql(_JOB_SHAPE), "events": sql(_EVENT_SHAPE), "broker": pushed}


def check_backlog_rows(system: Ours) -> None:
    """Stop unless a seeded job's rows are those `enqueue()` writes for the same job."""
    system.reset()
    system.request_enqueue(0)
    wanted = stored_shape()
    system.reset()
    seed_backlog(1)
    seeded = stored_shape()
    system.reset()
    if seeded != wanted:
        raise SystemExit(f"bench: seeded rows differ from enqueue()'s:\n{seeded}\n{wanted}")


# --- measuring ----------------------------------------------------------------------------------


def db_now() -> float:
    return float(sql("SELECT EXTRACT(EPOCH FROM clock_timestamp())")[0][0])


def waiting() -> bool:
    """Whether the broker still holds a job: it deletes each one's row once it has run."""
    return sql("SELECT EXISTS (SELECT 1 FROM django_q_ormq)")[0][0]


def finish_times(first_id: int) -> list[float]:
    """Epoch seconds at which the drained jobs finished, in order."""
    rows = sql(
        "SELECT EXTRACT(EPOCH FROM finished_at) FROM jobs_job"
        " WHERE id >= %s AND state = 'succeeded' ORDER BY finished_at",
        [first_id],
    )
    return [float(row[0]) for row in rows]


def span_rate(times: list[float]) -> float | None:
    """Jobs per second between the first and the last of these finish times."""
    if len(times) < 2 or times[-1] <= times[0]:
        return None
    return (len(times) - 1) / (times[-1] - times[0])


def rates(times: list[float], t0: float, t_end: float, n: int) -> dict:
    """The drain's rate from cluster start (`t0`) to the last job done (or to `t_end`, when it
    was cut short); without the start-up, from the first job done; over its first and last 10 %.
    """
    within = [t - t0 for t in times if t <= t_end]
    done = len(within)
    seconds = within[-1] if done == n else t_end - t0
    k = max(2, round(n * SPAN))
    return {
        "n": n,
        "done": done,
        "s": seconds,
        "jobs_s": done / seconds,
        "steady_jobs_s": span_rate(within),
        "first10_jobs_s": span_rate(within[:k]),
        "last10_jobs_s": span_rate(within[-k:]) if done == n else None,
    }


def measure(scenario: Scenario) -> dict:
    """Seed the scenario's tables, start the cluster, wait until the backlog is done or the cap
    is reached, stop it; the drain's rates and the database work per job done."""
    system = Ours(workers=scenario.workers)
    system.reset()
    if scenario.history:
        seed_history(scenario.history)
    first_id = seed_backlog(scenario.backlog)
    system.analyze()
    before = system.counters()
    t0 = db_now()
    service = system.start()
    try:
        end = time.monotonic() + scenario.cap
        while service.alive() and time.monotonic() < end and waiting():
            time.sleep(POLL)
        t_end = db_now()
        if not service.alive():
            raise SystemExit(f"bench: the cluster exited early; see {service.log_path}")
    finally:
        service.stop()
    times = finish_times(first_id)
    work = per_job(before, system.counters(), len(times))
    system.reset()
    return {**rates(times, t0, t_end, scenario.backlog), **work}


def run_rounds(chosen: list[Scenario], rounds: int, deadline: float, notes: list, loads: dict):
    """Each scenario's runs, round by round, while the time budget allows."""
    runs = {scenario.label: [] for scenario in chosen}
    for number in range(rounds):
        log(f"== round {number + 1} of {rounds}")
        for scenario in chosen:
            if scenario.once and number:
                continue
            if time.time() + scenario.cap > deadline:
                notes.append(f"{scenario.label}: run {number + 1} skipped (time budget).")
                continue
            log(
                f"{scenario.label}: drain {scenario.backlog:,} jobs with {scenario.workers}"
                f" worker(s), {scenario.history:,} finished jobs stored (cap {scenario.cap:.0f} s)"
            )
            run = measure(scenario)
            log(f"{scenario.label}: {run['done']:,} done, {run['jobs_s']:,.0f} jobs/s")
            runs[scenario.label].append(run)
        loads[f"round {number + 1}"] = load_average()
    return runs


# --- report -------------------------------------------------------------------------------------

COLUMNS = [
    "scenario",
    "finished jobs stored",
    "workers",
    "jobs drained",
    "jobs/s ↑",
    "vs baseline",
    "jobs/s after start-up",
    "vs baseline",
    "jobs/s, first 10 %",
    "jobs/s, last 10 %",
    "DB rows written / job",
    "runs",
]


def ratio(result: dict, baseline: dict, statistic: str) -> str:
    mine, theirs = result.get(statistic), baseline.get(statistic)
    return f"{mine / theirs:.2f}×" if mine and theirs else "–"


def row(label: str, result: dict, baseline: dict) -> str:
    partial = "†" if any(run["done"] < run["n"] for run in result["runs"]) else ""
    cells = [
        label,
        f"{result['history']:,}",
        str(result["workers"]),
        f"{result['backlog']:,}",
        fmt(result.get("jobs_s"), "jobs/s") + partial,
        ratio(result, baseline, "jobs_s"),
        fmt(result.get("steady_jobs_s"), "jobs/s"),
        ratio(result, baseline, "steady_jobs_s"),
        fmt(result.get("first10_jobs_s"), "jobs/s"),
        fmt(result.get("last10_jobs_s"), "jobs/s"),
        fmt(result.get("rows_written_per_job"), "count"),
        str(len(result["runs"])),
    ]
    return "| " + " | ".join(cells) + " |"


def render(document: dict) -> str:
    results = document["scenarios"]
    baseline = results.get("baseline", {})
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += [row(label, result, baseline) for label, result in results.items() if result["runs"]]
    return "\n".join([*heading(document), *lines, "", *footnotes(document), ""])


def heading(document: dict) -> list[str]:
    v = document["versions"]
    code = v.get("commit", "?")
    if v.get("uncommitted_in_bimride"):
        code += f" + {v['uncommitted_in_bimride']} uncommitted file(s) in bimride/"
    loads = ", ".join(f"{k} {x:.2f}" for k, x in document["load_average"].items())
    return [
        f"# Job system growth benchmark ({document['mode']} run, {document['generated_at']})",
        "",
        f"PostgreSQL {v.get('postgresql')}, Python {v.get('python')}, Django {v.get('django')},"
        f" django-q2 {v.get('django-q2')}, psycopg {v.get('psycopg')}; {v.get('cores')} cores;"
        f" {document['wall_s']} s wall; code {code}; 1-min load average {loads}.",
        "",
        *busy_warning(document),
    ]


def footnotes(document: dict) -> list[str]:
    results = document["scenarios"]
    notes = [
        "No-op jobs, our job system only; each figure is the median over runs. jobs/s: jobs"
        " done / seconds from starting the cluster (process start-up included, as in"
        " bench-jobs) to the last job finished. After start-up: from the first job finished to"
        " the last, which compares backlogs of different sizes fairly. First and last 10 %: the"
        " same within the first and the last tenth of the backlog. vs baseline: the rate to its"
        " left / the baseline's.",
        "Finished jobs stored: succeeded jobs already in jobs_job, with 3 jobs_jobevent rows"
        " each, spread over the retention window. DB rows written / job: rows inserted, updated"
        " and deleted in the database during the drain, per job done (pg_stat_database).",
    ]
    if any(run["done"] < run["n"] for result in results.values() for run in result["runs"]):
        notes.append(
            "† a drain hit its time cap before the backlog was done: jobs/s is jobs done /"
            " seconds until it was stopped, and its last 10 % are not measured."
        )
    for label, result in results.items():
        done = ", ".join(f"{r['done']:,}/{r['n']:,} in {r['s']:.1f} s" for r in result["runs"])
        notes.append(f"{label}: {done or 'not measured'}")
    notes += document["notes"]
    return [f"- {note}" for note in notes]


# --- main ---------------------------------------------------------------------------------------


def use_database(url: str, pidfile: Path) -> None:
    """Point this process (and the workers it starts) at the benchmark database."""
    os.environ.update(
        {
            "DATABASE_URL": url,
            "DJANGO_SETTINGS_MODULE": "bimride.settings",
            "JOB_EXTRA_MODULES": "bench.jobtypes",
            "DEBUG": "false",  # as in production: DEBUG wraps every cursor to record its queries
            "BENCH_PIDFILE": str(pidfile),
        }
    )
    django.setup()


def server_notes() -> list[str]:
    """What in the server's configuration bears on the figures."""
    if sql("SHOW autovacuum")[0][0] == "on":
        return []
    return [
        "autovacuum is off on this server: what a drain deletes or updates stays dead in the"
        " tables and their indexes until the next scenario empties them (the stored history is"
        " vacuumed when seeded)."
    ]


def _terminate(signum, frame):
    signal.signal(signal.SIGTERM, signal.SIG_IGN)  # a second one must not cut the clean-up
    raise SystemExit(f"bench: stopped by signal {signum}")  # unwinds through every finally


def main() -> None:
    signal.signal(signal.SIGTERM, _terminate)
    parser = argparse.ArgumentParser(prog="python -m bench.growth", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="smaller sizes, one run each")
    args = parser.parse_args()
    base_url = os.environ.get("DATABASE_URL")
    if not base_url:
        raise SystemExit("bench: set DATABASE_URL (make bench-growth does)")
    started = time.time()
    code_at_start = versions("").get("commit")
    mode = "quick" if args.quick else "full"
    size = SIZES[mode]
    chosen = scenarios(size)
    admin, url, pg_version = prepare_database(base_url)
    notes, loads = [], {"start": load_average()}
    if loads["start"] > 1.0:
        log(f"the machine is busy (load {loads['start']}): figures will be skewed")
    pidfile = Path(tempfile.gettempdir()) / f"bench-growth-{os.getpid()}.pids"
    try:
        use_database(url, pidfile)
        check_backlog_rows(Ours())
        notes += server_notes()
        runs = run_rounds(chosen, size["rounds"], time.time() + TOTAL[mode], notes, loads)
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
        scenarios={s.label: {**asdict(s), **combine(runs[s.label])} for s in chosen},
    )
    publish("growth", document, render(document))


if __name__ == "__main__":
    main()
