"""Peak memory and database sessions of processes a benchmark started, sampled in a thread.

Every `interval` seconds: the summed resident set size (RSS) of every live process in the
process groups of the given services (a service is started in its own session, so its group is
its main process, forked workers and their threads), and the sessions open on one database
(pg_stat_activity, the sampler's own excluded: it connects to the server's `postgres`
database). Summed RSS counts pages shared by forked processes once per process, as `ps` and the
figures in bench/README.md ("Jobs that wait on providers") do.
"""

import contextlib
import os
import threading
from pathlib import Path

import psycopg

from bench.common.procs import Service
from bench.common.runs import admin_url

PAGE = os.sysconf("SC_PAGE_SIZE")


def log(message: str) -> None:
    print(f"bench-providers: {message}", flush=True)


def group_rss(groups: set[int]) -> tuple[dict[int, int], int]:
    """Process group -> summed RSS in bytes of its live processes, for each of `groups`; and
    how many processes they have."""
    found, processes = dict.fromkeys(groups, 0), 0
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{entry.name}/stat").read_text().rpartition(")")[2].split()
            group = int(fields[2])  # after the name: state, ppid, pgrp
            if group in found:
                resident = int(Path(f"/proc/{entry.name}/statm").read_text().split()[1])
                found[group] += resident * PAGE
                processes += resident > 0  # a zombie holds no memory
    return found, processes


class Peaks:
    """Samples until `stop()`, which returns the peaks: summed RSS in MB (all services and each
    one) and database sessions."""

    def __init__(
        self,
        services: list[Service],
        *,
        database_url: str | None = None,
        database: str | None = None,
        interval: float = 0.5,
    ):
        self.services, self.interval = services, interval
        self.database_url, self.database = database_url, database
        self.rss = 0
        self.rss_each = {s.name: 0 for s in services}
        self.connections = 0
        self.processes = 0
        self.samples = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> "Peaks":
        self._thread.start()
        return self

    def _run(self) -> None:
        conn = None
        if self.database_url:
            conn = psycopg.connect(admin_url(self.database_url), autocommit=True)
        try:
            while not self._stop.is_set():
                self.sample(conn)
                self._stop.wait(self.interval)
            self.sample(conn)
        finally:
            if conn is not None:
                conn.close()

    def sample(self, conn: psycopg.Connection | None) -> None:
        by_group, processes = group_rss({s.pid for s in self.services})
        self.rss = max(self.rss, sum(by_group.values()))
        self.processes = max(self.processes, processes)
        for service in self.services:
            self.rss_each[service.name] = max(self.rss_each[service.name], by_group[service.pid])
        if conn is not None:
            sessions = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = %s"
                " AND pid <> pg_backend_pid()",
                [self.database],
            ).fetchone()[0]
            self.connections = max(self.connections, sessions)
        self.samples += 1

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(timeout=30)
        return {
            "rss_mb": mb(self.rss),
            "rss_mb_each": {name: mb(rss) for name, rss in self.rss_each.items()},
            "processes": self.processes,
            "db_connections": self.connections if self.database_url else None,
            "samples": self.samples,
        }


def mb(size: int) -> float:
    return round(size / 2**20, 1)
