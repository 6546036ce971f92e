"""Part (a) of `make bench-providers`: jobs that wait 300 ms on Stripe, drained by this release's
production worker layout at default settings, and by Celery's threads pool at the same total
concurrency, on the same machine against the same Stripe stand-in.

A backlog of `bench.stripe_wait` jobs (`bench.common.jobtypes`: one PaymentIntent read through the
Stripe SDK, `bench.common.provider_call`) is enqueued with the workers stopped; then the queue's
`Q_CLUSTER_NAME=critical python manage.py qcluster` starts with nothing set but the database,
the stand-in's address, the job module and quiet logs, and drains it. Measured: jobs per second
from the first job's start to the last one's end, the workers' peak summed RSS and the peak of
database sessions. Celery gets the same backlog through Redis (Debian's `redis-server`, on a
free loopback port, installed with apt-get when missing) and `celery worker --pool threads
--concurrency N`, N = our processes × attempts in flight per process.

``python -m bench.providers.jobs fill N INTENT`` (DATABASE_URL set) is the enqueuing child.
"""

import json
import os
import shutil
import subprocess
import sys
import time

import psycopg

from bench.common.procs import ROOT, Service
from bench.common.provider_call import PROVIDER_JOB, PROVIDER_QUEUE
from bench.providers.peaks import Peaks, log
from devtools.supervisor import free_port

SETTINGS_SCRIPT = """
import json
from django.conf import settings
queue, cluster = {queue!r}, settings.Q_CLUSTER
try:
    named = cluster if queue == cluster["name"] else cluster["ALT_CLUSTERS"][queue]
    workers = named["workers"]
except (KeyError, TypeError):
    workers = None
concurrency = getattr(settings, "JOB_CONCURRENCY", None)
print(json.dumps({{"workers": workers, "concurrency": concurrency}}, default=str))
"""


# --- settings -----------------------------------------------------------------------------------
def worker_settings(env: dict[str, str], queue: str, cwd=ROOT) -> dict:
    """The queue's worker processes and its JOB_CONCURRENCY setting as the release at `cwd`
    reads them with `env` (None where it has no such setting)."""
    answer = subprocess.run(
        [sys.executable, "manage.py", "shell", "-c", SETTINGS_SCRIPT.format(queue=queue)],
        cwd=cwd,
        env={**os.environ, **env},
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    )
    found = json.loads(answer.stdout.strip().splitlines()[-1])
    return {
        "workers": found["workers"],
        "setting": found["concurrency"],
        "per_process": per_process(found["concurrency"], queue),
    }


def per_process(setting, queue: str) -> int:
    """Attempts in flight per worker process from a JOB_CONCURRENCY setting: absent (a release
    without it) runs one; a number is every queue's; a mapping names each queue's."""
    if setting is None:
        return 1
    if isinstance(setting, dict):
        setting = setting.get(queue, setting.get(queue.upper(), 1))
    return int(setting)


# --- Redis for Celery ---------------------------------------------------------------------------
def redis_server() -> str:
    """The path of Debian's redis-server, installed with apt-get when missing."""
    found = shutil.which("redis-server")
    if found:
        return found
    log("installing redis-server with apt-get (Celery's broker)")
    install = ["apt-get", "install", "-y", "-q", "redis-server"]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(install, env=env, capture_output=True, timeout=600).returncode:
        subprocess.run(["apt-get", "update", "-q"], env=env, capture_output=True, timeout=600)
        subprocess.run(install, env=env, check=True, capture_output=True, timeout=600)
    found = shutil.which("redis-server")
    if not found:
        raise RuntimeError("redis-server is not on PATH after installing it")
    return found


def start_redis() -> tuple[Service, str]:
    """Redis on a free loopback port, nothing saved; the service and its URL (database 15)."""
    import redis

    port = free_port()
    command = [redis_server(), "--port", str(port), "--bind", "127.0.0.1", "--save", ""]
    command += ["--appendonly", "no", "--protected-mode", "no"]
    service = Service("providers-redis", command, {})
    deadline = time.monotonic() + 20
    while True:
        try:
            redis.Redis(port=port, socket_connect_timeout=1).ping()
            break
        except redis.ConnectionError:
            if time.monotonic() > deadline or not service.alive():
                service.stop()
                raise RuntimeError(
                    "redis-server did not answer; see .data/bench-providers-redis.log"
                )
            time.sleep(0.2)
    return service, f"redis://127.0.0.1:{port}/15"


# --- the runs -----------------------------------------------------------------------------------
def worker_env(url: str, stripe_base: str, tmp) -> dict[str, str]:
    """Our workers' environment: default settings but for where things are and quiet logs."""
    return {
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "bimride.settings",
        "Q_CLUSTER_NAME": PROVIDER_QUEUE,  # the production layout: one qcluster per queue
        "DEBUG": "false",
        "LOG_LEVEL": "WARNING",
        "JOB_EXTRA_MODULES": "bench.common.jobtypes",
        "STRIPE_API_BASE": stripe_base,
        "EMAIL_BACKEND": "django.core.mail.backends.dummy.EmailBackend",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "PYTHONUNBUFFERED": "1",
    }


def run_ours(
    url: str, database: str, env: dict[str, str], jobs: int, intent: str, limit: float
) -> dict:
    """Enqueue `jobs` jobs, start the queue's qcluster, wait until they are done (at most
    `limit` s); the drain's figures."""
    subprocess.run(
        [sys.executable, "-m", "bench.providers.jobs", "fill", str(jobs), intent],
        cwd=ROOT,
        env={**os.environ, **env},
        check=True,
        timeout=600,
    )
    service = Service("providers-ours", [sys.executable, "manage.py", "qcluster"], env)
    peaks = Peaks([service], database_url=url, database=database).start()
    try:
        waited = wait_done(lambda: ours_done(url)[0], jobs, limit, service)
    finally:
        figures = peaks.stop()
        service.stop()
    done, first, last = ours_done(url)
    return drained(done, jobs, first, last, waited) | figures


def ours_done(url: str) -> tuple[int, float | None, float | None]:
    """Jobs succeeded, the first one's start and the last one's end (epoch seconds)."""
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*), extract(epoch FROM min(started_at)), extract(epoch FROM"
            " max(finished_at)) FROM jobs_job WHERE name = %s AND state = 'succeeded'",
            [PROVIDER_JOB],
        ).fetchone()


def run_celery(
    redis_url: str, stripe_base: str, concurrency: int, jobs: int, intent: str, limit: float
) -> dict:
    """The same backlog through Redis to `celery worker --pool threads`."""
    os.environ["BENCH_REDIS_URL"] = redis_url  # read when bench.common.celery_app is first imported
    from bench.common import celery_app

    if redis_url != celery_app.REDIS_URL:
        raise RuntimeError(f"bench.common.celery_app already bound to {celery_app.REDIS_URL}")
    celery_app.clear()
    for _ in range(jobs):
        celery_app.stripe_wait.delay(intent)
    command = [sys.executable, "-m", "celery", "-A", "bench.common.celery_app", "worker"]
    command += ["--pool", "threads", "--concurrency", str(concurrency)]
    command += ["-Q", celery_app.QUEUE, "-l", "WARNING"]
    env = {"BENCH_REDIS_URL": redis_url, "STRIPE_API_BASE": stripe_base, "PYTHONUNBUFFERED": "1"}
    service = Service("providers-celery", command, env)
    peaks = Peaks([service]).start()

    def done() -> int:
        return int(celery_app.client().get(celery_app.DONE_KEY) or 0)

    try:
        waited = wait_done(done, jobs, limit, service)
    finally:
        figures = peaks.stop()
        service.stop()
    spans = celery_app.spans()
    first = min((s for s, _ in spans), default=None)
    last = max((e for _, e in spans), default=None)
    celery_app.clear()
    return drained(len(spans), jobs, first, last, waited) | figures


def wait_done(done, jobs: int, limit: float, service: Service) -> float:
    """Poll `done()` until it reaches `jobs` or `limit` s pass; the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        if done() >= jobs:
            break
        if not service.alive():
            raise RuntimeError(f"{service.name} exited; see .data/bench-{service.name}.log")
        time.sleep(0.25)
    return time.monotonic() - started


def drained(done: int, jobs: int, first: float | None, last: float | None, waited: float) -> dict:
    span = float(last) - float(first) if first is not None and last is not None else None
    return {
        "jobs": jobs,
        "done": done,
        "seconds": round(span, 2) if span else None,
        "jobs_per_second": round(done / span, 1) if span else None,
        "waited_seconds": round(waited, 1),
    }


def fill(jobs: int, intent: str) -> None:
    """Enqueue `jobs` jobs, 100 a transaction, as services do (the broker row on commit)."""
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bimride.settings")
    import django

    django.setup()
    from django.db import transaction

    from bimride.jobs.engine.enqueue import enqueue

    for start in range(0, jobs, 100):
        with transaction.atomic():
            for _ in range(start, min(jobs, start + 100)):
                enqueue(PROVIDER_JOB, {"intent_id": intent})


if __name__ == "__main__":
    if sys.argv[1:2] != ["fill"]:
        raise SystemExit("usage: python -m bench.providers.jobs fill N INTENT")
    fill(int(sys.argv[2]), sys.argv[3])
