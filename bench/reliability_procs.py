"""Processes of `bench.reliability`: its own embedded PostgreSQL, web and qcluster processes.

Every process runs in its own session (process group) and is registered in `Processes`, whose
`stop_all()` (called from the driver's `finally`) SIGTERMs and then SIGKILLs each group.
"""

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import requests

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / ".data"
PGDATA = DATA / "pg-reliability"
LOG_DIR = DATA / "reliability"
STOP_GRACE = 10  # seconds a process gets after SIGTERM before its group is killed


def say(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


def devdb(command: str) -> str:
    """Run `python -m devtools.devdb <command>` on the reliability data dir; return stdout."""
    env = {**os.environ, "BIMRIDE_PGDATA": str(PGDATA)}
    result = subprocess.run(
        [sys.executable, "-m", "devtools.devdb", command],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    if result.returncode not in (0, 3):
        raise RuntimeError(f"devdb {command} failed ({result.returncode}): {result.stderr}")
    return result.stdout.strip()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Proc:
    """One command in its own process group, with its output in a log file."""

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        LOG_DIR.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.log = open(LOG_DIR / f"{name}.log", "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env={**os.environ, **env},
            stdin=subprocess.DEVNULL,
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.pid = self.process.pid

    def alive(self) -> bool:
        return self.process.poll() is None

    def group(self) -> list[int]:
        """Live pids in this process group other than the leader (django-q2's processes)."""
        pids = []
        for entry in os.scandir("/proc"):
            if entry.name.isdigit() and int(entry.name) != self.pid:
                with contextlib.suppress(OSError):
                    if os.getpgid(int(entry.name)) == self.pid and not _zombie(int(entry.name)):
                        pids.append(int(entry.name))
        return pids

    def kill(self) -> None:
        """SIGKILL the whole group (a crash of the host process, say)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)

    def stop(self) -> None:
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=STOP_GRACE)
        self.kill()
        self.log.close()


def _zombie(pid: int) -> bool:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")


class Processes:
    """Every process the run starts; `stop_all()` leaves none behind."""

    def __init__(self, database_url: str):
        self.database_url = database_url
        self.procs: list[Proc] = []

    def start(self, name: str, command: list[str], env: dict[str, str]) -> Proc:
        proc = Proc(name, command, {"DATABASE_URL": self.database_url, **env})
        self.procs.append(proc)
        return proc

    def qcluster(self, name: str, queue: str, workers: int, env: dict[str, str]) -> Proc:
        base = {
            "Q_CLUSTER_NAME": queue,
            f"Q_WORKERS_{queue.upper()}": str(workers),
            "JOB_RETRY_SCALE": "0.01",
            "JOB_LEASE_GRACE_SECONDS": "1",
            "JOB_EXTRA_MODULES": "bench.reliability_jobtypes",
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        }
        return self.start(name, [sys.executable, "manage.py", "qcluster"], {**base, **env})

    def web(self, name: str = "web", env: dict[str, str] | None = None) -> tuple[Proc, str]:
        """Start gunicorn (one process, 32 threads, DEBUG off, as in production) on a free
        loopback port; wait for it. (runserver's listen backlog of 10 resets most of 50
        simultaneous connections, which would measure the dev server, not the product.)"""
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "bimride.wsgi", "-b", f"127.0.0.1:{port}"]
        command += ["-w", "1", "-k", "gthread", "--threads", "32", "--timeout", "60"]
        web_env = {
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
            **(env or {}),
        }
        proc = self.start(name, command, web_env)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            with contextlib.suppress(requests.RequestException):
                if requests.get(base + "/healthz", timeout=2).status_code == 200:
                    return proc, base
            if not proc.alive():
                break
            time.sleep(0.2)
        raise RuntimeError(f"web server did not come up; see {LOG_DIR / (name + '.log')}")

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.alive() or not proc.log.closed:
                proc.stop()
        self.procs.clear()
