"""Figures of `bench.api`: percentiles per endpoint, medians over runs, the A/B comparison (its
capacity search, targets and tables), the markdown summaries and the plots."""

import statistics
from pathlib import Path

from bench.api.load import EXPECTED
from bench.api.setup import SLOW_PROVIDER_SECONDS

KINDS = ("create", "accept", "read", "start", "complete", "ping")
TARGET_P95_COMPLETE_MS = 15.0


# --- figures ------------------------------------------------------------------------------------
def percentile(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, int(round(q / 100 * len(ordered) + 0.5)) - 1))]


def stats(records: list[list], kind: str | None) -> dict:
    rows = [r for r in records if kind is None or r[0] == kind]
    latencies = [r[2] for r in rows]
    errors = sum(1 for r in rows if r[3] != EXPECTED[r[0]])
    by_status = {}
    for r in rows:
        if r[3] != EXPECTED[r[0]]:
            by_status[str(r[3])] = by_status.get(str(r[3]), 0) + 1
    return {
        "requests": len(rows),
        "errors": errors,
        "errors_by_status": by_status,
        "p50_ms": percentile(latencies, 50),
        "p95_ms": percentile(latencies, 95),
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
        "dependency_wait_p99_ms": percentile([r[4] for r in rows], 99),
    }


def summarize(result: dict, rate: float, duration: float) -> dict:
    records = result["records"]
    handled = len(records) + sum(result["skipped"].values())  # skipped: a slot not sent
    ok = sum(1 for r in records if r[3] == EXPECTED[r[0]])
    return {
        "rate": rate,
        "duration": duration,
        "sent": len(records),
        "achieved_send_rate": round(handled / max(result["send_seconds"], 1e-9), 1),
        "answered_rate": round(sum(1 for r in records if r[3]) / duration, 1),
        "ok_rate": round(ok / duration, 1),
        "max_client_lag_ms": result["max_client_lag_ms"],
        "skipped": result["skipped"],
        "unfinished": result["unfinished"],
        "error_samples": result["error_samples"],
        "endpoints": {kind: stats(records, kind) for kind in KINDS} | {"all": stats(records, None)},
    }


def per_second(records: list[list]) -> dict:
    """Per second of the run (by scheduled time): p50 and p95 of all requests and of complete."""
    series = {"all": {}, "complete": {}}
    for r in records:
        second = int(r[1])
        series["all"].setdefault(second, []).append(r[2])
        if r[0] == "complete":
            series["complete"].setdefault(second, []).append(r[2])
    return {
        name: [
            [s, percentile(values, 50), percentile(values, 95)]
            for s, values in sorted(by_second.items())
        ]
        for name, by_second in series.items()
    }


def problems(run: dict) -> int:
    """Requests that did not get their expected answer, steps not sent, answers never seen."""
    return run["endpoints"]["all"]["errors"] + sum(run["skipped"].values()) + run["unfinished"]


def median_of(runs: list[dict]) -> dict:
    """Per endpoint, the median over runs of each figure."""
    endpoints = {}
    for kind in (*KINDS, "all"):
        figures = {}
        for key in ("requests", "errors", "p50_ms", "p95_ms", "p99_ms", "max_ms"):
            values = [
                r["endpoints"][kind][key] for r in runs if r["endpoints"][kind][key] is not None
            ]
            figures[key] = statistics.median(values) if values else None
        endpoints[kind] = figures
    return {
        "runs": len(runs),
        "endpoints": endpoints,
        "achieved_send_rate": statistics.median(r["achieved_send_rate"] for r in runs),
        "answered_rate": statistics.median(r["answered_rate"] for r in runs),
        "ok_rate": statistics.median(r["ok_rate"] for r in runs),
        "max_client_lag_ms": max(r["max_client_lag_ms"] for r in runs),
        "problems": statistics.median(problems(r) for r in runs),
        "cpu_ms_per_request": {
            name: statistics.median(r["cpu_ms_per_request"][name] for r in runs)
            for name in runs[0]["cpu_ms_per_request"]
        },
        "load_average": max(max(r["load_average"]) for r in runs),
    }


def compact(run: dict) -> dict:
    """A sweep point: the run without its per-second series."""
    return {key: value for key, value in run.items() if key != "series"}


def sweep_table(points: list[dict]) -> str:
    lines = [
        "| rate /s | sent /s | ok /s | errors | complete p50 | p95 | p99 | all p95 | load avg |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for p in points:
        c, a = p["endpoints"]["complete"], p["endpoints"]["all"]
        lines.append(
            f"| {p['rate']:g} | {p['achieved_send_rate']:g} | {p['ok_rate']:g} | {a['errors']} "
            f"| {fmt(c['p50_ms'])} "
            f"| {fmt(c['p95_ms'])} | {fmt(c['p99_ms'])} | {fmt(a['p95_ms'])} "
            f"| {max(p['load_average'])} |"
        )
    return "\n".join(lines)


def fmt(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def table(phase: dict) -> str:
    lines = [
        "| endpoint | requests | errors | p50 ms | p95 ms | p99 ms | max ms |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for kind in (*KINDS, "all"):
        e = phase["endpoints"][kind]
        lines.append(
            f"| {kind} | {e['requests']:.0f} | {e['errors']:.0f} | {fmt(e['p50_ms'])} "
            f"| {fmt(e['p95_ms'])} | {fmt(e['p99_ms'])} | {fmt(e['max_ms'])} |"
        )
    return "\n".join(lines)


def plot(document: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    phases = [p for p in ("after", "before") if document.get(p)]
    fig, axes = plt.subplots(len(phases), 1, figsize=(10, 4 * len(phases)), squeeze=False)
    for ax, name in zip(axes[:, 0], phases, strict=True):
        run = document[name]["runs"][0]
        for series, colour in (("all", "tab:blue"), ("complete", "tab:red")):
            points = run["series"][series]
            xs = [p[0] for p in points]
            ax.plot(xs, [p[1] for p in points], color=colour, ls="--", label=f"{series} p50")
            ax.plot(xs, [p[2] for p in points], color=colour, label=f"{series} p95")
        if name == "after":
            ax.axhline(TARGET_P95_COMPLETE_MS, color="grey", lw=0.8, label="target p95 complete")
        ax.set_yscale("log")
        ax.set_xlabel("second of the run (scheduled send time)")
        ax.set_ylabel("latency ms")
        ax.set_title(
            f"{name}: {run['rate']:g} requests/s for {run['duration']:g}s "
            f"(receipt {'inside the request, provider 2 s' if name == 'before' else 'as a job'})"
        )
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(loc="upper right", fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def markdown(document: dict) -> str:
    after, before = document["after"], document.get("before")
    m = after["median"]["endpoints"]["complete"]
    verdict = "meets" if (m["p95_ms"] or 1e9) < TARGET_P95_COMPLETE_MS else "misses"
    lines = [
        "# The receipt inside the request or as a job (`make bench-api BENCH_ARGS=--receipt`)",
        "",
        f"Ride flow at a constant {after['runs'][0]['rate']:g} requests/s (open loop, latency from "
        "the scheduled send time) for "
        f"{after['runs'][0]['duration']:g}s from a separate process on loopback: create, accept, "
        "start, complete, and as many location pings; gunicorn "
        f"{document['config']['web_workers']} {document['config']['worker_class']} workers, "
        "one qcluster per queue draining the jobs meanwhile.",
        "",
        f"**p95 of `complete`: {fmt(m['p95_ms'])} ms — {verdict} the target "
        f"(< {TARGET_P95_COMPLETE_MS:g} ms).** "
        f"Median of {after['median']['runs']} run(s); achieved send rate "
        f"{after['median']['achieved_send_rate']:g}/s (the load generator fell behind its "
        f"schedule by up to {after['median']['max_client_lag_ms']:g} ms), answers with the "
        f"expected status {after['median']['ok_rate']:g}/s.",
        "",
        "## After: the receipt is a job",
        "",
        table(after["median"]),
        "",
        f"Load average during the runs: {document['load_averages']['after']}. Jobs due but not "
        f"done at the end of the load: {after['runs'][-1]['jobs']['backlog_at_end_of_load']}, "
        f"after {after['runs'][-1]['jobs']['drain_seconds']}s of draining: "
        f"{after['runs'][-1]['jobs']['backlog_after_drain']}.",
    ]
    if before:
        run = before["runs"][0]
        b = run["endpoints"]["complete"]
        same = document["after_at_before_rate"]
        m = same["endpoints"]["complete"]
        lines += [
            "",
            f"## Before: the receipt sent inside the request (provider takes "
            f"{SLOW_PROVIDER_SECONDS:g} s)",
            "",
            f"At {run['rate']:g} requests/s for {run['duration']:g}s (achieved send rate "
            f"{run['achieved_send_rate']:g}/s, ok answers {run['ok_rate']:g}/s; steps not "
            f"sent because the previous one failed: {run['skipped'] or 'none'}; load average "
            f"up to {max(run['load_average'])}).",
            "",
            table(run),
            "",
            f"The same rate and duration after (load average up to {max(same['load_average'])}):",
            "",
            table(same),
            "",
            "| `complete` | before ms | after ms | before / after |",
            "|---|---:|---:|---:|",
        ]
        for key in ("p50_ms", "p95_ms", "p99_ms"):
            ratio = document["ratio_complete"].get(key)
            lines.append(
                f"| {key.removesuffix('_ms')} | {fmt(b[key])} | {fmt(m[key])} "
                f"| {'—' if ratio is None else f'{ratio:.1f}×'} |"
            )
    if document.get("sweep"):
        lines += [
            "",
            "## After, at other rates",
            "",
            f"{document['config']['sweep_duration']:g}s each; ok = answers with the expected "
            "status per second.",
            "",
            sweep_table(document["sweep"]),
        ]
    run = after["runs"][-1]
    lines += [
        "",
        "CPU per request sent (ms, last after run): "
        + ", ".join(f"{k} {v}" for k, v in run["cpu_ms_per_request"].items())
        + ".",
    ]
    lines += ["", "![latency over time](api_receipt_latency.png)", ""]
    return "\n".join(lines)
