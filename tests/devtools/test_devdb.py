"""Tests of ``python -m devtools.devdb``: the embedded PostgreSQL, run as a subprocess.

No Django here: each test gets its own data dir (``BIMRIDE_PGDATA``) and server, stopped (or
killed) by the fixture. Every wait is bounded.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import psycopg
import pytest

ROOT = Path(__file__).resolve().parents[2]
TIMEOUT = 90  # seconds for any devdb command; a cold start takes ~1 s


def devdb_env(data: Path) -> dict[str, str]:
    """Return the environment for a devdb subprocess on data."""
    env = {k: v for k, v in os.environ.items() if k != "DATABASE_URL"}
    return {**env, "BIMRIDE_PGDATA": str(data)}


def devdb(command: str, data: Path) -> subprocess.CompletedProcess[str]:
    """Run a devdb command; output is captured by pipes, so a daemon holding them would hang."""
    return subprocess.run(
        [sys.executable, "-m", "devtools.devdb", command],
        check=False,
        cwd=ROOT,
        env=devdb_env(data),
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def start(data: Path) -> str:
    """Start the server on data, check the output is exactly one URL line, return it."""
    result = devdb("start", data)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("postgresql://")
    return result.stdout.strip()


def postgres_processes(data: Path) -> dict[int, int]:
    """Return {pid: ppid} of live (non-zombie) postgres processes whose cwd is data."""
    found = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.readlink(f"/proc/{pid}/cwd") != str(data):
                continue
            exe = os.path.basename(os.readlink(f"/proc/{pid}/exe"))
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if exe.startswith("postgres") and fields[0] not in ("Z", "X"):
            found[int(pid)] = int(fields[1])
    return found


def postmasters(data: Path) -> list[int]:
    """Return the pids of the postmasters running on data (children excluded)."""
    procs = postgres_processes(data)
    return [pid for pid, ppid in procs.items() if ppid not in procs]


def select_one(url: str) -> int:
    """Connect to url and return the result of SELECT 1."""
    with psycopg.connect(url, connect_timeout=10) as conn:
        row = conn.execute("SELECT 1").fetchone()
    assert row is not None
    return int(row[0])


@pytest.fixture
def pgdata() -> Iterator[Path]:
    """Yield a fresh data dir path; afterwards stop the server and remove everything.

    Not pytest's tmp_path: as root, /tmp/pytest-of-root is mode 0700 and the server runs as
    the system user bimride-pg, which must traverse to the data dir.
    """
    base = Path(tempfile.mkdtemp(prefix="bimride-devdb-")).resolve()
    base.chmod(0o755)
    data = base / "pg"
    yield data
    url = devdb("url", data).stdout.strip()
    devdb("stop", data)
    for pid in postgres_processes(data):  # stop failed: do not leave servers behind
        os.kill(pid, signal.SIGKILL)
    shutil.rmtree(base, ignore_errors=True)
    sock = parse_qs(urlsplit(url).query)["host"][0]
    if sock.startswith("/tmp/bimride-pg-"):
        shutil.rmtree(sock, ignore_errors=True)


def test_start_status_connect_stop(pgdata: Path) -> None:
    url = start(pgdata)
    assert url == f"postgresql://postgres@/bimride?host={pgdata}"
    assert devdb("url", pgdata).stdout.strip() == url
    status = devdb("status", pgdata)
    assert (status.returncode, status.stdout) == (0, "running\n")
    assert select_one(url) == 1
    assert start(pgdata) == url  # already running: same URL, still one server
    assert len(postmasters(pgdata)) == 1

    assert devdb("stop", pgdata).returncode == 0
    status = devdb("status", pgdata)
    assert (status.returncode, status.stdout) == (3, "stopped\n")
    assert postgres_processes(pgdata) == {}
    assert devdb("stop", pgdata).returncode == 0  # idempotent


def test_concurrent_starts_share_one_server(pgdata: Path) -> None:
    command = [sys.executable, "-m", "devtools.devdb", "start"]
    procs = [
        subprocess.Popen(
            command,
            cwd=ROOT,
            env=devdb_env(pgdata),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=TIMEOUT) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    assert outputs[0][0] == outputs[1][0] == f"postgresql://postgres@/bimride?host={pgdata}\n"
    assert len(postmasters(pgdata)) == 1
    assert select_one(outputs[0][0].strip()) == 1


@pytest.mark.parametrize("pid_reused", [False, True], ids=["stale-pid", "reused-pid"])
def test_start_recovers_after_kill_9(pgdata: Path, pid_reused: bool) -> None:
    url = start(pgdata)
    (postmaster,) = postmasters(pgdata)
    os.kill(postmaster, signal.SIGKILL)
    with subprocess.Popen(["sleep", "120"]) as unrelated:
        if pid_reused:  # postmaster.pid now names a live process that is not postgres
            pidfile = pgdata / "postmaster.pid"
            lines = pidfile.read_text().splitlines(keepends=True)
            pidfile.write_text(f"{unrelated.pid}\n" + "".join(lines[1:]))
        assert start(pgdata) == url
        assert unrelated.poll() is None  # not signalled by anyone
        unrelated.kill()
    (new_postmaster,) = postmasters(pgdata)
    assert new_postmaster != postmaster
    assert select_one(url) == 1
    assert devdb("status", pgdata).returncode == 0


def test_long_data_dir_uses_short_socket_dir(pgdata: Path) -> None:
    data = pgdata.parent / ("d" * 100) / "pg"
    data.parent.mkdir(mode=0o755)
    try:
        url = start(data)
        sock = parse_qs(urlsplit(url).query)["host"][0]
        assert sock.startswith("/tmp/bimride-pg-") and len(sock) < 40
        assert select_one(url) == 1
    finally:
        devdb("stop", data)
        shutil.rmtree(devdb("url", data).stdout.split("host=")[1].strip(), ignore_errors=True)
    assert postgres_processes(data) == {}


@pytest.mark.skipif(os.geteuid() != 0, reason="only root runs the server as another user")
def test_root_refuses_unreachable_data_dir(pgdata: Path) -> None:
    closed = pgdata.parent / "closed"
    closed.mkdir(mode=0o700)
    result = devdb("start", closed / "pg")
    assert result.returncode == 1
    assert "cannot reach" in result.stderr and str(closed) in result.stderr
    assert result.stdout == ""
    assert closed.stat().st_mode & 0o777 == 0o700  # parents are never chmod-ed
