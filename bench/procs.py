"""Worker processes started by the benchmark, each in its own session, and their clean-up.

Every started process group is listed in the file BENCH_PIDFILE names until it is stopped, so
the parent (`bench.jobs`) can still kill what a crashed or timed-out suite left behind.
"""

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOG_DIR = ROOT / ".data"
STOP_GRACE = 15  # seconds a service gets to stop after SIGTERM before its group is killed
OURS = ("qcluster", "celery")  # what may appear in the command line of a listed process


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


class Service:
    """One command (a qcluster or a Celery worker) running in its own process group."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        LOG_DIR.mkdir(exist_ok=True)
        self.name = name
        self.log_path = LOG_DIR / f"bench-{name}.log"
        mode = "ab" if name in _logged else "wb"  # each run of the benchmark starts them anew
        _logged.add(name)
        self.log = open(self.log_path, mode)  # noqa: SIM115 - closed in stop()
        self.started = time.time()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        _write([*_listed(), self.process.pid])

    def pids(self) -> list[int]:
        """The main process and its children (workers, pusher, monitor)."""
        pids = [self.process.pid]
        for proc in Path("/proc").iterdir():
            if proc.name.isdigit():
                with contextlib.suppress(OSError):
                    if os.getpgid(int(proc.name)) == self.process.pid:
                        pids.append(int(proc.name))
        return sorted(set(pids))

    def alive(self) -> bool:
        return self.process.poll() is None

    def stop(self) -> None:
        """SIGTERM the main process (it stops its own children), then SIGKILL the group."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE)
        kill_group(self.process.pid)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        _write([pgid for pgid in _listed() if pgid != self.process.pid])
        self.log.close()


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
