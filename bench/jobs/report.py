"""The benchmark's markdown table: each system's figures, ratios ours / other, the targets."""

SYSTEMS = [
    ("ours", "ours"),
    ("plain-defaults", "plain q2 defaults"),
    ("plain-best", "plain q2 best"),
    ("celery", "Celery+Redis"),
]
# (measurement, statistic, label, unit, target as (op, value) or None, True when higher is better)
ROWS = [
    ("enqueue", "p50_ms", "(a) enqueue in atomic() incl. its commit, median", "ms",
     ("<", 1.5), False),
    ("enqueue", "p95_ms", "(a) enqueue in atomic() incl. its commit, p95", "ms", None, False),
    ("drain", "jobs_s", "(b) drain backlog, 2 workers, start to all done", "jobs/s",
     (">=", 650), True),
    ("drain", "first_done_s", "(b) start-up: cluster start to first job done", "s", None, False),
    ("pickup", "p50_ms", "(c) idle pickup enqueue to start, p50", "ms", None, False),
    ("pickup", "p95_ms", "(c) idle pickup enqueue to start, p95", "ms", ("<", 5), False),
    ("pickup", "p99_ms", "(c) idle pickup enqueue to start, p99", "ms", None, False),
    ("defer", "p50_ms", "(d) deferred lateness start - due, p50", "ms", None, False),
    ("defer", "p95_ms", "(d) deferred lateness start - due, p95", "ms", ("<", 1000), False),
    ("enqueue", "commits_per_job", "(a) DB transactions committed per enqueue", "count", None,
     False),
    ("enqueue", "rows_written_per_job", "(a) DB rows written per enqueue", "count", None, False),
    ("drain", "commits_per_job", "(b) DB transactions committed per job drained", "count", None,
     False),
    ("drain", "rows_written_per_job", "(b) DB rows written per job drained", "count", None, False),
]  # fmt: skip


# Through PgBouncer against direct: (measurement, statistic, label, unit, target ratio pooled /
# direct as (op, value) or None)
POOLED_ROWS = [
    ("enqueue", "p50_ms", "(a) enqueue in atomic() incl. its commit, median", "ms", None),
    ("drain", "jobs_s", "(b) drain 5,000 no-op jobs, 2 workers", "jobs/s", (">=", 0.9)),
    ("pickup", "p50_ms", "(c) idle pickup enqueue to start, p50", "ms", None),
    ("pickup", "p95_ms", "(c) idle pickup enqueue to start, p95", "ms", ("<=", 1.2)),
    ("defer", "p50_ms", "(d) deferred lateness start - due, p50", "ms", None),
    ("defer", "p95_ms", "(d) deferred lateness start - due, p95", "ms", None),
    ("drain", "commits_per_job", "(b) DB transactions committed per job drained", "count", None),
    ("drain", "rows_written_per_job", "(b) DB rows written per job drained", "count", None),
]


def value(suite: dict | None, measurement: str, statistic: str) -> float | None:
    if not suite or measurement not in suite:
        return None
    return suite[measurement].get(statistic)


def fmt(number: float | None, unit: str) -> str:
    if number is None:
        return "–"
    if unit == "jobs/s":
        return f"{number:,.0f}"
    if abs(number) >= 100:
        return f"{number:,.0f}"
    if abs(number) >= 10:
        return f"{number:.1f}"
    return f"{number:.2f}"


def meets(number: float | None, target) -> str:
    if number is None or target is None:
        return ""
    op, limit = target
    ok = number >= limit if op == ">=" else number < limit
    return "met" if ok else "**missed**"


def partial_marks(suites: dict) -> dict:
    """Footnote marks for drains that hit their time cap."""
    marks = {}
    for key, suite in suites.items():
        drain = suite.get("drain") or {}
        if any(run["done"] < run["n"] for run in drain.get("runs", [])):
            marks[key] = "†"
    return marks


def render(document: dict) -> str:
    suites = document["suites"]
    present = [(key, name) for key, name in SYSTEMS if key in suites]
    others = [(key, name) for key, name in present if key != "ours"]
    marks = partial_marks(suites)
    header = ["metric", "unit", "target", *(name for _, name in present)]
    if "ours" in suites:
        header += [f"ours / {name}" for _, name in others] + ["ours vs target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for measurement, statistic, label, unit, target, higher in ROWS:
        better = "↑" if higher else "↓"
        cells = [label, f"{unit} {better}", f"{target[0]} {target[1]:g}" if target else ""]
        for key, _ in present:
            mark = marks.get(key, "") if measurement == "drain" else ""
            cells.append(fmt(value(suites[key], measurement, statistic), unit) + mark)
        if "ours" in suites:
            mine = value(suites["ours"], measurement, statistic)
            for key, _ in others:
                theirs = value(suites[key], measurement, statistic)
                ratio = mine / theirs if mine is not None and theirs else None
                cells.append(f"{ratio:.2f}×" if ratio is not None else "–")
            cells.append(meets(mine, target))
        lines.append("| " + " | ".join(cells) + " |")
    pooled = pooled_table(suites)
    return "\n".join([*heading(document), *lines, "", *pooled, *footnotes(document, marks), ""])


def pooled_table(suites: dict) -> list[str]:
    """Ours through PgBouncer (transaction mode) beside ours direct, measured in the same run."""
    direct, pooled, polling = (suites.get(k) for k in ("ours", "ours-pooled", "ours-polling"))
    if not direct or not pooled:
        return []
    listen = pooled.get("listen")
    header = ["metric", "unit", "direct", "through PgBouncer", "pooled / direct", "target"]
    header += ["", "polling through PgBouncer", "polling / direct"]
    lines = [
        "## Through PgBouncer (transaction mode), same run",
        "",
        "Pooled workers "
        + (
            "LISTEN on their own direct connection (JOB_LISTEN_DATABASE_URL)."
            if listen
            else "poll: this release has no JOB_LISTEN_DATABASE_URL (both pooled columns poll)."
        )
        + " The polling column runs the pooled workers without it.",
        "",
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
    ]
    for measurement, statistic, label, unit, target in POOLED_ROWS:
        mine, theirs = value(direct, measurement, statistic), value(pooled, measurement, statistic)
        ratio = theirs / mine if mine and theirs is not None else None
        slow = value(polling, measurement, statistic)
        slow_ratio = slow / mine if mine and slow is not None else None
        verdict = ""
        if target and ratio is not None:
            op, limit = target
            verdict = "met" if (ratio >= limit if op == ">=" else ratio <= limit) else "**missed**"
        cells = [label, unit, fmt(mine, unit), fmt(theirs, unit)]
        cells += [f"{ratio:.2f}×" if ratio is not None else "–"]
        cells += [f"{target[0]} {target[1]:g}×" if target else "", verdict, fmt(slow, unit)]
        cells += [f"{slow_ratio:.2f}×" if slow_ratio is not None else "–"]
        lines.append("| " + " | ".join(cells) + " |")
    return [*lines, ""]


def heading(document: dict) -> list[str]:
    v = document["versions"]
    code = v.get("commit", "?")
    if v.get("uncommitted_in_bimride"):
        code += f" + {v['uncommitted_in_bimride']} uncommitted file(s) in bimride/"
    loads = ", ".join(f"{k} {x:.2f}" for k, x in document.get("load_average", {}).items())
    return [
        f"# Job system benchmark ({document['mode']} run, {document['generated_at']})",
        "",
        f"PostgreSQL {v.get('postgresql')}, Python {v.get('python')}, Django {v.get('django')},"
        f" django-q2 {v.get('django-q2')}, psycopg {v.get('psycopg')},"
        f" Celery {v.get('celery', '–')}, redis-py {v.get('redis', '–')};"
        f" {v.get('cores')} cores; {document['wall_s']} s wall; code {code}."
        " Each figure is the median over runs.",
        "",
        f"1-min load average at the start and after each round (the benchmark's own included):"
        f" {loads}.",
        "",
        *busy_warning(document),
    ]


def busy_warning(document: dict) -> list[str]:
    start = document.get("load_average", {}).get("start", 0.0)
    if start <= 1.0:
        return []
    return [
        f"**Warning: the machine was busy before the benchmark started (load {start:.2f} on"
        f" {document['versions'].get('cores')} cores).** Every figure is skewed, latencies and"
        " the PostgreSQL-heavy systems most; rerun on a quiet machine before judging targets.",
        "",
    ]


def footnotes(document: dict, marks: dict) -> list[str]:
    suites = document["suites"]
    notes = [
        "Ratios are ours / other; ↓ lower is better, ↑ higher is better.",
        "(a) in-process, workers stopped; (b) backlog enqueued with workers stopped, timed from"
        " starting the cluster (process start-up included); (c) one job every ~20 ms to idle"
        " workers; ours: Job.started_at - created_at, others: start recorded by the task minus"
        " the time just before enqueue; (d) ours/Celery: delay 1-3 s, enqueued over 3 s;"
        " plain django-q2: Schedule(ONCE), created over 30 s (one scheduler period).",
    ]
    if marks:
        notes.append(
            "† the drain hit its time cap before the backlog was done: jobs/s is jobs done /"
            " elapsed within the cap."
        )
    for key, suite in suites.items():
        parts = list(suite.get("errors", []))
        for measurement in ("enqueue", "drain", "pickup", "defer"):
            runs = suite.get(measurement, {}).get("runs", [])
            if runs:
                sizes = "/".join(str(run.get("n")) for run in runs)
                parts.append(f"{measurement} {len(runs)} run(s) of n={sizes}")
        drain = suite.get("drain", {}).get("runs", [])
        if drain:
            done = ", ".join(f"{r['done']}/{r['n']} in {r['s']:.1f} s" for r in drain)
            parts.append(f"drain runs: {done}")
        notes.append(f"{suite.get('title', key)}: " + "; ".join(parts))
    notes += document.get("notes", [])
    return [f"- {note}" for note in notes]
