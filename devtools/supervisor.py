"""Child processes for `make run`, the tests and the benchmarks: start, stop, wait, free ports.

Each child runs in its own session (so its process group is everything it forks, and a
terminal's Ctrl-C reaches only the parent). Stopping is always the same bounded sequence:
SIGTERM to the main process only (django-q2 and gunicorn stop their own children), a grace
period, then SIGKILL to whatever is left in the group.
"""

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterable
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
STOP_GRACE = 15.0  # seconds a child gets to finish its work after SIGTERM
KILL_WAIT = 5.0  # seconds to reap a child after SIGKILL


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Process:
    """One command in its own session, with its output in `log` (or this terminal's)."""

    grace = STOP_GRACE  # seconds `stop()` waits after SIGTERM

    def __init__(
        self,
        name: str,
        command: list[str],
        env: dict[str, str] | None = None,
        *,
        log: Path | None = None,
        log_mode: str = "ab",
        cwd: Path = ROOT,
    ):
        self.name = name
        self.log_path = log
        self._log = None
        if log is not None:
            log.parent.mkdir(parents=True, exist_ok=True)
            self._log = open(log, log_mode)  # noqa: SIM115 - closed when the process ends
        self.started = time.time()
        self.process = subprocess.Popen(
            command,
            cwd=cwd,
            env={**os.environ, **(env or {})},
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT if self._log else None,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    @property
    def returncode(self) -> int | None:
        return self.process.poll()

    def group(self) -> list[int]:
        """Live processes of its group other than the main one (workers, pusher, monitor)."""
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) != self.pid:
                with contextlib.suppress(OSError, IndexError):
                    if os.getpgid(int(entry.name)) == self.pid and not _zombie(int(entry.name)):
                        pids.append(int(entry.name))
        return sorted(pids)

    def pids(self) -> list[int]:
        """The main process and the rest of its group."""
        return [self.pid, *self.group()]

    def kill(self) -> None:
        """SIGKILL the whole group at once (a crash of its host, say) and reap the main one."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=KILL_WAIT)
        self._close_log()

    def stop(self, grace: float | None = None) -> bool:
        """Stop it (see the module's docstring); False if it needed the SIGKILL."""
        return not stop_all([self], self.grace if grace is None else grace)

    def _close_log(self) -> None:
        if self._log is not None and not self._log.closed:
            self._log.close()


def stop_all(processes: Iterable[Process], grace: float = STOP_GRACE) -> list[Process]:
    """Stop them together within one grace period; return those that had to be killed."""
    processes = list(processes)
    for proc in processes:
        if proc.alive():
            with contextlib.suppress(ProcessLookupError):
                proc.process.send_signal(signal.SIGTERM)  # not the group: they stop their own
    deadline = time.monotonic() + grace
    late = []
    for proc in processes:
        try:
            proc.process.wait(timeout=max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            late.append(proc)
    for proc in processes:
        proc.kill()  # anything the shutdown left behind in the group
    return late


def wait_http(url: str, timeout: float, *, process: Process | None = None) -> None:
    """Wait until `url` answers below 500; fail early if `process` (the server) exits."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(requests.RequestException):
            if requests.get(url, timeout=2).status_code < 500:
                return
        if process is not None and not process.alive():
            raise RuntimeError(f"{process.name} exited (status {process.returncode})")
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not answer within {timeout:.0f}s")


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")
