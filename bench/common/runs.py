"""What the benchmarks share of a run: the database `make bench-jobs` and `make bench-growth` use
(`bimride_bench`, created, migrated and locked here), the URLs of the benchmarks' admin
connections, and the record a run leaves in bench/results (load, versions, JSON and markdown).
"""

import contextlib
import json
import os
import platform
import subprocess
import sys
import time
from importlib import metadata
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg import sql

from bench.common.procs import ROOT

BENCH_DB = "bimride_bench"
RESULTS = ROOT / "bench" / "results"
LOCK_KEY = 0x62656E6368  # pg_advisory_lock: one benchmark at a time per server


def log(message: str) -> None:
    print(f"bench: {message}", flush=True)


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    scheme = "postgresql" if parts.scheme in ("postgres", "postgresql", "pgsql") else parts.scheme
    return urlunsplit((scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


def admin_url(base_url: str, name: str = "postgres") -> str:
    """The URL of database `name` for the benchmarks' admin connections (a session advisory
    lock held for the whole run, pg_stat_activity, backend pids): on the server itself. Behind a
    transaction-mode pooler those would land on whichever server session the pooler lends, so
    BENCH_DIRECT_DATABASE_URL (the pooler's upstream) names the server when DATABASE_URL is the
    pooler."""
    return with_database(os.environ.get("BENCH_DIRECT_DATABASE_URL") or base_url, name)


def prepare_database(base_url: str) -> tuple[psycopg.Connection, str, str]:
    """Create and migrate `bimride_bench`; return the locked admin connection, its URL and the
    server's version."""
    admin = psycopg.connect(admin_url(base_url), autocommit=True)
    if not admin.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
        raise SystemExit("bench: another benchmark holds the lock on this server; try later")
    exists = admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone()
    if not exists:
        log(f"creating database {BENCH_DB}")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    others = admin.execute(
        "SELECT pid, application_name, backend_start FROM pg_stat_activity WHERE datname = %s",
        [BENCH_DB],
    ).fetchall()
    if others:
        raise SystemExit(
            f"bench: {len(others)} session(s) already use {BENCH_DB} (leftover workers?): "
            f"{others}; stop them first"
        )
    url = with_database(base_url, BENCH_DB)
    log(f"migrating {BENCH_DB}")
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bimride.settings"},
        check=True,
        timeout=180,
    )
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE IF NOT EXISTS bench_marks"
            " (tag text NOT NULL, t_ref double precision, t_start double precision NOT NULL)"
        )
        conn.execute("CREATE INDEX IF NOT EXISTS bench_marks_tag ON bench_marks (tag)")
    version = admin.execute("SHOW server_version").fetchone()[0]
    return admin, url, version


def load_average() -> float:
    """The 1-minute load average: other work on the machine skews every figure."""
    return float(Path("/proc/loadavg").read_text().split()[0])


def document_of(
    *,
    mode: str,
    started: float,
    pg_version: str,
    code_at_start: str | None,
    loads: dict,
    notes: list,
    **results,
) -> dict:
    """A run's results with when, how long, on what code and versions, and under what load."""
    found = versions(pg_version)
    if found.get("commit") != code_at_start:
        notes.append(f"The code changed during the run: {code_at_start} at the start.")
    return {
        "mode": mode,
        "generated_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "wall_s": round(time.time() - started, 1),
        "versions": found,
        "load_average": loads,
        "notes": notes,
        **results,
    }


def publish(name: str, document: dict, markdown: str) -> None:
    """Write bench/results/<name>.json and .md, and print the markdown."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    write_atomically(RESULTS / f"{name}.json", json.dumps(document, indent=2) + "\n")
    write_atomically(RESULTS / f"{name}.md", markdown)
    print()
    print(markdown)


def write_atomically(path: Path, text: str) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(text)
    os.replace(tmp, path)


def versions(pg_version: str) -> dict:
    found = {"python": platform.python_version(), "postgresql": pg_version, "cores": os.cpu_count()}
    for package in ("django", "django-q2", "psycopg", "celery", "redis"):
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[package] = metadata.version(package)
    git = ["git", "-C", str(ROOT)]
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        found["commit"] = subprocess.run(
            [*git, "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            [*git, "status", "--porcelain", "--", "bimride"], capture_output=True, text=True
        ).stdout.splitlines()
        found["uncommitted_in_bimride"] = len(changed)
    return found
