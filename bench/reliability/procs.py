"""Processes of `bench.reliability`: its own embedded PostgreSQL, web and qcluster processes.

Every process runs in its own session (process group) and is registered in `Processes`, whose
`stop_all()` (called from the driver's `finally`) SIGTERMs and then SIGKILLs each group.
"""

import os
import subprocess
import sys
import time

from devtools.supervisor import ROOT, Process, free_port, wait_http

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


class Proc(Process):
    """One command in its own process group, with its output in .data/reliability/<name>.log."""

    grace = STOP_GRACE

    def __init__(self, name: str, command: list[str], env: dict[str, str]):
        super().__init__(name, command, env, log=LOG_DIR / f"{name}.log")


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
            "JOB_EXTRA_MODULES": "bench.reliability.jobtypes",
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        }
        return self.start(name, [sys.executable, "manage.py", "qcluster"], {**base, **env})

    def web(
        self,
        name: str = "web",
        env: dict[str, str] | None = None,
        *,
        workers: int = 1,
        threads: int = 32,
    ) -> tuple[Proc, str]:
        """Start gunicorn (one process, 32 threads, DEBUG off, as in production) on a free
        loopback port; wait for it. (runserver's listen backlog of 10 resets most of 50
        simultaneous connections, which would measure the dev server, not the product.)"""
        port = free_port()
        command = [sys.executable, "-m", "gunicorn", "bimride.wsgi", "-b", f"127.0.0.1:{port}"]
        command += ["-w", str(workers), "-k", "gthread", "--threads", str(threads)]
        command += ["--timeout", "60"]
        web_env = {
            "DEBUG": "false",
            "ALLOWED_HOSTS": "127.0.0.1,localhost",
            "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
            **(env or {}),
        }
        proc = self.start(name, command, web_env)
        base = f"http://127.0.0.1:{port}"
        try:
            wait_http(base + "/healthz", 60, process=proc)
        except RuntimeError as error:
            raise RuntimeError(f"web server did not come up ({error}); see {proc.log_path}")
        return proc, base

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            proc.stop()
        self.procs.clear()
