"""The API benchmark's pure decisions: the order of its runs and its capacity search."""

from bench.api import compare as ab
from bench.api.load import STEPS, offsets, step_of


def run(arm: str, p95: float, errors: int = 0, skipped: int = 0) -> dict:
    endpoint = {"errors": errors, "p95_ms": p95}
    return {
        "arm": arm,
        "endpoints": {"complete": endpoint, "all": endpoint},
        "skipped": {"start": skipped} if skipped else {},
        "unfinished": 0,
    }


def test_runs_alternate_the_releases_at_each_rate():
    assert ab.alternation(["A", "B"], 3) == ["A", "B", "A", "B", "A", "B"]
    assert ab.alternation(["B"], 2) == ["B", "B"]


def test_rates_are_the_tables_and_the_capacity_steps_lowest_first():
    assert ab.rates_to_try(50, 300) == [10, 50, 100, 150, 200, 250, 300]


def test_a_rate_passes_on_the_median_run():
    assert ab.passes([run("A", 40), run("A", 60), run("A", 45)])
    assert not ab.passes([run("A", 60), run("A", 55), run("A", 45)])
    assert not ab.passes([run("A", 10, errors=1), run("A", 10, skipped=2), run("A", 10)])
    assert ab.passes([run("A", 10, errors=1), run("A", 10), run("A", 10)])


def test_the_capacity_search_stops_at_the_first_failure():
    steps = ab.capacity_steps(50, 400)
    verdicts = {50: True, 100: True, 150: False, 200: True}
    assert ab.capacity(verdicts, steps) == 100
    assert ab.capacity({50: False}, steps) == 0
    # 200 is the table's, run whatever the search says; 250 only while every step passed.
    assert ab.wanted(200, verdicts, steps)
    assert not ab.wanted(250, verdicts, steps)
    assert ab.wanted(250, {50: True, 100: True, 150: True, 200: True}, steps)
    assert not ab.wanted(150, {50: True, 100: False}, steps)


def test_the_targets_read_ratios_off_the_medians():
    def at(cpu: float, complete: float, read: float) -> dict:
        endpoints = {"complete": {"p50_ms": complete}, "read": {"p50_ms": read}}
        return {
            "cpu_ms_per_request": {"web": cpu, "workers": 0, "postgres": 0, "stand-ins": 9},
            "endpoints": endpoints,
        }

    document = {
        "config": {"cpu_rate": 100.0},
        "medians": {
            "A": {10.0: at(0, 20, 10), 100.0: at(12, 0, 0)},
            "B": {10.0: at(0, 8, 5), 100.0: at(6, 0, 0)},
        },
        "capacity": {"A": 100.0, "B": 150.0},
    }
    rows = {row["name"]: row for row in ab.targets(document)}
    cpu = rows["CPU per request, product processes"]
    assert (cpu["ratio"], cpu["met"]) == (0.5, True)  # the stand-ins are not counted
    assert rows["`complete` p50 at 10 requests/s"]["ratio"] == 0.4
    assert not rows["`GET /api/rides/{id}` p50 at 10 requests/s"]["met"]  # 0.5 > 0.4
    assert not rows["capacity (`complete` p95 < 50 ms, no errors)"]["met"]  # 1.5 < 2


def test_each_slot_is_one_step_and_the_rider_reads_after_the_accept():
    kinds = [kind for kind, _ in STEPS]
    assert kinds.index("accept") < kinds.index("read") < kinds.index("complete")
    offset = offsets(200)
    assert step_of(8 * 100 + kinds.index("read"), offset) == (100 - offset[3], "read")
