"""`make bench-providers`' own decisions: the concurrency it reads, the figures it derives from
the rides' times, and the memory it samples."""

import os
from datetime import UTC, datetime, timedelta

import pytest

from bench.providers.__main__ import cell
from bench.providers.flow import outcome
from bench.providers.jobs import per_process
from bench.providers.peaks import group_rss

T0 = datetime(2026, 1, 1, tzinfo=UTC)


def at(seconds: float | None) -> datetime | None:
    return None if seconds is None else T0 + timedelta(seconds=seconds)


@pytest.mark.parametrize(
    ("setting", "queue", "expected"),
    [
        (None, "critical", 1),  # a release without the setting runs one attempt per process
        (16, "bulk", 16),
        ({"critical": 16, "default": 16, "bulk": 1}, "bulk", 1),
        ({"CRITICAL": 12}, "critical", 12),
        ({"default": 16}, "critical", 1),
    ],
)
def test_attempts_per_process_come_from_the_concurrency_setting(setting, queue, expected):
    assert per_process(setting, queue) == expected


def test_a_ride_never_captured_or_receipted_counts_as_later_than_the_drain():
    # (completed, captured, receipt sent), seconds from T0; the load ended at 10 s
    times = [(0, 1, 3), (1, 2, 5), (2, 3, None), (3, None, None)]
    rows = [(at(done), at(captured), at(sent)) for done, captured, sent in times]
    figures = outcome(rows, at(10), drain=300)
    assert figures["rides_completed"] == 4
    assert (figures["captured"], figures["receipted"]) == (3, 2)
    assert figures["captured_by_end_of_load"] == 3
    assert figures["captured_p50_s"] == 1.0
    assert figures["captured_p95_s"] == "> 300"  # 1 of 4 missing: beyond the 95th percentile
    assert figures["receipt_p50_s"] == 4.0 and figures["receipt_p95_s"] == "> 300"


def test_a_run_without_rides_has_no_percentiles():
    figures = outcome([], at(10), drain=60)
    assert figures["rides_completed"] == 0 and figures["captured_p95_s"] is None


def test_the_sampler_sums_the_memory_of_a_process_group():
    by_group, processes = group_rss({os.getpgrp()})
    assert by_group[os.getpgrp()] > 10 * 2**20 and processes >= 1  # this test's Python at least


@pytest.mark.parametrize(
    ("value", "unit", "shown"),
    [
        (None, " s", "—"),
        (1.25, " s", "1.25 s"),
        (1656.53, " MB", "1,656.5 MB"),
        (1500, "", "1,500"),
    ],
)
def test_report_cells(value, unit, shown):
    assert cell(value, unit) == shown
