"""The A/B comparison of `bench.api`: which runs to make (alternation, the capacity search),
the figures per release and their ratios, the issue's targets, the tables, the markdown report
and the plot. Pure functions of the runs' summaries (`bench.api.report.summarize`)."""

import statistics
from pathlib import Path

from bench.api.report import KINDS, fmt, median_of, problems

TABLE_RATES = (10.0, 50.0, 100.0, 200.0)  # requests/s of the latency table
CAPACITY_P95_MS = 50.0  # capacity: the highest rate with `complete` p95 under this, no errors
HEADLINE_RATE, HEADLINE_P95_MS = 200.0, 15.0  # `complete` p95 under 15 ms at 200 requests/s
PRODUCT = ("web", "workers", "postgres")  # the processes whose CPU counts; stand-ins and
# the load generator are reported apart
LABELS = {"read": "GET /api/rides/{id}"}
# (figure, how it is read off the medians, target ratio B/A, at most or at least)
TARGETS = [
    ("CPU per request, product processes", "cpu", 0.5, "max"),
    ("`complete` p50 at 10 requests/s", ("complete", 10.0), 0.5, "max"),
    ("`GET /api/rides/{id}` p50 at 10 requests/s", ("read", 10.0), 0.4, "max"),
    ("capacity (`complete` p95 < 50 ms, no errors)", "capacity", 2.0, "min"),
]


# --- which runs ---------------------------------------------------------------------------------
def capacity_steps(step: float, max_rate: float) -> list[float]:
    """The rates the capacity search tries, lowest first: step, 2 step, … up to max_rate."""
    return [step * n for n in range(1, int(max_rate // step) + 1)]


def rates_to_try(step: float, max_rate: float) -> list[float]:
    """Every rate that may be run: the table's and the capacity search's, lowest first."""
    return sorted(set(TABLE_RATES) | set(capacity_steps(step, max_rate)))


def alternation(arms: list, repeat: int) -> list:
    """The order of the runs at one rate: A, B, A, B, … (`repeat` pairs)."""
    return [arm for _ in range(repeat) for arm in arms]


def passes(runs: list[dict]) -> bool:
    """At one rate: the median `complete` p95 under CAPACITY_P95_MS and, in the median run, no
    request without its expected answer."""
    p95 = statistics.median(r["endpoints"]["complete"]["p95_ms"] or 1e9 for r in runs)
    return p95 < CAPACITY_P95_MS and statistics.median(problems(r) for r in runs) == 0


def searching(verdicts: dict[float, bool], steps: list[float], rate: float) -> bool:
    """Whether the capacity search tries `rate`: every lower step was tried and passed."""
    return all(verdicts.get(s) for s in steps if s < rate)


def capacity(verdicts: dict[float, bool], steps: list[float]) -> float:
    """The highest step passed with every lower step passed too (0: the first failed)."""
    best = 0.0
    for step in steps:
        if not verdicts.get(step):
            break
        best = step
    return best


def wanted(rate: float, verdicts: dict[float, bool], steps: list[float]) -> bool:
    """Whether a release runs at `rate`: a rate of the table, or its capacity search goes on."""
    return rate in TABLE_RATES or (rate in steps and searching(verdicts, steps, rate))


# --- figures ------------------------------------------------------------------------------------
def product_cpu(cpu_ms: dict[str, float]) -> float:
    return round(sum(cpu_ms.get(name, 0.0) for name in PRODUCT), 2)


def ratio(b: float | None, a: float | None) -> float | None:
    return round(b / a, 2) if a and b is not None else None


def medians(runs: list[dict]) -> dict[str, dict[float, dict]]:
    """Per release and rate, the medians over its runs (`bench.api.report.median_of`)."""
    grouped: dict[str, dict[float, list]] = {}
    for run in runs:
        grouped.setdefault(run["arm"], {}).setdefault(run["rate"], []).append(run)
    return {
        arm: {rate: median_of(rs) | {"passes": passes(rs)} for rate, rs in sorted(by.items())}
        for arm, by in grouped.items()
    }


def figure(document: dict, arm: str, key) -> float | None:
    med = document["medians"].get(arm, {})
    if key == "cpu":
        at = med.get(document["config"]["cpu_rate"])
        return product_cpu(at["cpu_ms_per_request"]) if at else None
    if key == "capacity":
        return document["capacity"][arm]
    kind, rate = key
    at = med.get(rate)
    return at["endpoints"][kind]["p50_ms"] if at else None


def targets(document: dict) -> list[dict]:
    rows = []
    for name, key, target, sense in TARGETS:
        a, b = figure(document, "A", key), figure(document, "B", key)
        r = ratio(b, a)
        met = None if r is None else (r <= target if sense == "max" else r >= target)
        rows.append({"name": name, "A": a, "B": b, "ratio": r, "target": target, "sense": sense})
        rows[-1]["met"] = met
    return rows


def headline(document: dict) -> dict:
    at = document["medians"].get("B", {}).get(HEADLINE_RATE)
    p95 = at["endpoints"]["complete"]["p95_ms"] if at else None
    met = p95 is not None and p95 < HEADLINE_P95_MS and at["problems"] == 0
    return {"rate": HEADLINE_RATE, "p95_ms": p95, "target_ms": HEADLINE_P95_MS, "met": met}


# --- tables -------------------------------------------------------------------------------------
def verdict(met: bool | None) -> str:
    return "—" if met is None else ("**met**" if met else "**missed**")


def targets_table(document: dict) -> str:
    lines = ["| | A | B | B / A | target | |", "|---|---:|---:|---:|---:|---|"]
    for row in document["targets"]:
        unit = " /s" if "capacity" in row["name"] else " ms"
        sign = "≤" if row["sense"] == "max" else "≥"
        lines.append(
            f"| {row['name']} | {fmt(row['A'])}{unit} | {fmt(row['B'])}{unit} "
            f"| {fmt2(row['ratio'])} | {sign} {row['target']:g}× | {verdict(row['met'])} |"
        )
    return "\n".join(lines)


def fmt2(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}×"


def cpu_table(document: dict) -> str:
    rate = document["config"]["cpu_rate"]
    a = document["medians"].get("A", {}).get(rate, {}).get("cpu_ms_per_request", {})
    b = document["medians"].get("B", {}).get(rate, {}).get("cpu_ms_per_request", {})
    lines = ["| process | A ms | B ms | B / A |", "|---|---:|---:|---:|"]
    for name in PRODUCT:
        lines.append(
            f"| {name} | {fmt2ms(a.get(name))} | {fmt2ms(b.get(name))} "
            f"| {fmt2(ratio(b.get(name), a.get(name)))} |"
        )
    pa, pb = (product_cpu(x) if x else None for x in (a, b))
    lines.append(
        f"| **product** | **{fmt2ms(pa)}** | **{fmt2ms(pb)}** | **{fmt2(ratio(pb, pa))}** |"
    )
    for name in ("stand-ins", "load generator"):
        lines.append(
            f"| {name} (not counted) | {fmt2ms(a.get(name))} | {fmt2ms(b.get(name))} "
            f"| {fmt2(ratio(b.get(name), a.get(name)))} |"
        )
    return "\n".join(lines)


def fmt2ms(value: float | None) -> str:
    return "—" if value is None else f"{value:.2f}"


def latency_table(document: dict) -> str:
    lines = [
        "| rate /s | endpoint | A p50 | B p50 | B / A | A p95 | B p95 | B / A | errors A / B |",
        "|---:|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for rate in TABLE_RATES:
        a = document["medians"].get("A", {}).get(rate)
        b = document["medians"].get("B", {}).get(rate)
        if not (a and b):
            continue
        for kind in (*KINDS, "all"):
            ea, eb = a["endpoints"][kind], b["endpoints"][kind]
            lines.append(
                f"| {rate:g} | {LABELS.get(kind, kind)} | {fmt(ea['p50_ms'])} "
                f"| {fmt(eb['p50_ms'])} | {fmt2(ratio(eb['p50_ms'], ea['p50_ms']))} "
                f"| {fmt(ea['p95_ms'])} | {fmt(eb['p95_ms'])} "
                f"| {fmt2(ratio(eb['p95_ms'], ea['p95_ms']))} "
                f"| {ea['errors']:g} / {eb['errors']:g} |"
            )
    return "\n".join(lines)


def capacity_table(document: dict) -> str:
    c = document["config"]
    lines = [
        "| rate /s | A `complete` p95 | A ok /s | A errors | A | B `complete` p95 "
        "| B ok /s | B errors | B |",
        "|---:|---:|---:|---:|---|---:|---:|---:|---|",
    ]
    steps = set(capacity_steps(c["capacity_step"], c["max_rate"]))
    rates = sorted({r for m in document["medians"].values() for r in m} & steps)
    for rate in rates:
        cells = [f"{rate:g}"]
        for arm in ("A", "B"):
            m = document["medians"].get(arm, {}).get(rate)
            if m is None:
                cells += ["", "", "", "not run"]
                continue
            cells += [
                fmt(m["endpoints"]["complete"]["p95_ms"]),
                f"{m['ok_rate']:g}",
                f"{m['problems']:g}",
                "pass" if m["passes"] else "fail",
            ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def headline_line(document: dict) -> str:
    h = document["headline"]
    state = "met" if h["met"] else "missed"
    return (
        f"**Headline: `complete` p95 at {h['rate']:g} requests/s is {fmt(h['p95_ms'])} ms on B "
        f"(target < {h['target_ms']:g} ms): {state}.**"
    )


def markdown_ab(document: dict) -> str:
    c, arms = document["config"], document["arms"]
    web = f"{c['web_workers']} {c['worker_class']} worker(s)"
    if c["threads"]:
        web += f", {c['threads']} threads each"
    if c["web_args"]:
        web += f", `{c['web_args']}`"
    env = f"; environment {', '.join(c['env'])}" if c["env"] else ""
    lines = [
        "# API: this release against the baseline (`make bench-api`)",
        "",
        f"A = {arms['A']}; B = {arms['B']}. The ride flow (create, accept, the rider's "
        "`GET /api/rides/{id}`, start, complete, location pings) at a constant rate from an "
        "open-loop load generator in a separate process on loopback (latency from the "
        "scheduled send time); gunicorn "
        f"{web}{env}, one qcluster per queue draining the jobs meanwhile. Each run has a fresh "
        "copy of a database migrated and seeded by the release's own code and starts that "
        f"release's processes; at each rate the runs alternate A, B ({c['repeat']} pair(s)), "
        f"{c['duration']:g} s at the table's rates and {c['step_duration']:g} s at the "
        "capacity search's others. Figures are medians over a release's runs; ratios are "
        f"B / A within this run. Machine: {document['versions'].get('machine', '?')}, "
        f"{document.get('cpus', '?')} cores; {document['elapsed_seconds'] / 60:.0f} minutes.",
        "",
        headline_line(document),
        "",
        "## Targets (B / A)",
        "",
        targets_table(document),
        "",
        f"## CPU per request at {c['cpu_rate']:g} requests/s",
        "",
        "Milliseconds of user + system CPU per request sent, over the load and the draining of "
        "the jobs it causes, exited processes included; postgres is the whole server (every "
        "backend, its I/O and background processes). The product is web + workers + postgres.",
        "",
        cpu_table(document),
        "",
        "## Latency per endpoint (ms)",
        "",
        latency_table(document),
        "",
        f"## Capacity: the highest rate with `complete` p95 < {CAPACITY_P95_MS:g} ms and no errors",
        "",
        f"A: {document['capacity']['A']:g} requests/s, B: {document['capacity']['B']:g} "
        f"requests/s (B / A {fmt2(ratio(document['capacity']['B'], document['capacity']['A']))}"
        f"). Steps of {c['capacity_step']:g} requests/s, a release stops going up at its first "
        "failure (the table's rates are run regardless); errors = requests without their "
        "expected answer + steps not sent + answers never seen, median run.",
        "",
        capacity_table(document),
        "",
        f"Highest load average during a release's runs: A {document['load_average']['A']}, "
        f"B {document['load_average']['B']}.",
        "",
        "![`complete` p95 per rate](api_latency.png)",
        "",
    ]
    profiled = [r for r in document["runs"] if r.get("profile")]
    if profiled:
        profile = profiled[0]["profile"]
        lines += [
            f"## Where B's web workers spend their time at {profiled[0]['rate']:g} requests/s",
            "",
            f"py-spy, {c['py_spy']} s, {profile['samples']} samples; share of samples in which "
            "a function is on the stack (inclusive) and at its top (leaf).",
            "",
            "| inclusive % | function | | leaf % | function |",
            "|---:|---|---|---:|---|",
        ]
        for (inc, inc_share), (leaf, leaf_share) in zip(
            profile["inclusive"], profile["leaf"], strict=False
        ):
            lines.append(f"| {inc_share} | `{inc}` | | {leaf_share} | `{leaf}` |")
        lines.append("")
    return "\n".join(lines)


def plot_ab(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 4.5))
    for arm, colour in (("A", "tab:grey"), ("B", "tab:blue")):
        med = document["medians"].get(arm, {})
        rates = sorted(med)
        for q, style in (("p50_ms", "--"), ("p95_ms", "-")):
            values = [med[r]["endpoints"]["complete"][q] for r in rates]
            label = f"{arm} complete {q.removesuffix('_ms')}"
            ax.plot(rates, values, style, color=colour, marker="o", label=label)
    ax.axhline(CAPACITY_P95_MS, color="tab:red", lw=0.8, label="capacity limit (p95)")
    ax.axhline(HEADLINE_P95_MS, color="tab:green", lw=0.8, label="headline target (p95)")
    ax.set_yscale("log")
    ax.set_xlabel("offered requests/s")
    ax.set_ylabel("`complete` latency ms")
    ax.set_title("A (baseline) vs B (this release)")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
