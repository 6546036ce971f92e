"""Worker processes started by the benchmark, each in its own session, and their clean-up.

Every started process group is listed in the file BENCH_PIDFILE names until it is stopped, so
the parent (`bench.jobs`) can still kill what a crashed or timed-out suite left behind.
"""

import contextlib
import os
import signal
from pathlib import Path

from devtools.supervisor import ROOT, Process

LOG_DIR = ROOT / ".data"
OURS = (
    "qcluster",
    "celery",
    "gunicorn",
    "standin",
    "bench.api.load",
    "redis-server",
)  # what may appear in the command line of a listed process


_logged: set[str] = set()


def _pidfile() -> Path | None:
    path = os.environ.get("BENCH_PIDFILE")
    return Path(path) if path else None


def _listed() -> list[int]:
    path = _pidfile()
    if path is None or not path.exists():
        return []
    return [int(line) for line in path.read_text().split() if line.strip()]


def _write(pgids: list[int]) -> None:
    path = _pidfile()
    if path is not None:
        path.write_text("".join(f"{pgid}\n" for pgid in pgids))


class Service(Process):
    """One command (a qcluster or a Celery worker) in its own process group, listed in the
    pid file until it is stopped; its log is .data/bench-<name>.log."""

    def __init__(self, name: str, command: list[str], env: dict[str, str], cwd: Path = ROOT):
        mode = "ab" if name in _logged else "wb"  # each run of the benchmark starts them anew
        _logged.add(name)
        log = LOG_DIR / f"bench-{name}.log"
        super().__init__(name, command, env, log=log, log_mode=mode, cwd=cwd)
        _write([*_listed(), self.pid])

    def stop(self, grace: float | None = None) -> bool:
        stopped = super().stop(grace)
        _write([pgid for pgid in _listed() if pgid != self.pid])
        return stopped


def kill_group(pgid: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signal.SIGKILL)


def kill_leftovers(pidfile: Path) -> list[int]:
    """SIGKILL the groups still listed in `pidfile` whose leader is one of ours; return them."""
    killed = []
    if not pidfile.exists():
        return killed
    for line in pidfile.read_text().split():
        pgid = int(line)
        try:
            cmdline = Path(f"/proc/{pgid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            cmdline = ""  # the leader is gone; its children may not be
        if not cmdline or any(word in cmdline for word in OURS):
            kill_group(pgid)
            killed.append(pgid)
    pidfile.unlink()
    return killed
