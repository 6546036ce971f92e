"""Setup of `bench.api`: its database and seed data, its processes (web, workers, stand-ins),
the CPU they use, and py-spy profiles of the web workers."""

import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psycopg
import requests
from psycopg import sql

from bench.jobs import admin_url
from bench.procs import ROOT, Service
from devtools.postmark_standin import PostmarkStandin
from devtools.supervisor import free_port, wait_http

BENCH_DB = "bimride_bench_api"
LOCK_KEY = 0x62656E6361  # pg_advisory_lock: one API benchmark at a time per server
QUEUES = ("critical", "default", "bulk")
QUEUE_SERVICES = {f"api-{queue}" for queue in QUEUES}
RIDERS = DRIVERS = 300  # each reused every 300 rides (12 s at 200 requests/s; a ride takes 2 s)
SLOW_PROVIDER_SECONDS = 2.0  # the email (Postmark) stand-in's answer time in the "before" phase


def log(message: str) -> None:
    print(f"bench-api: {message}", flush=True)


# --- the database -------------------------------------------------------------------------------
def lock_server(base_url: str) -> psycopg.Connection:
    admin = psycopg.connect(admin_url(base_url), autocommit=True)
    if not admin.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
        raise SystemExit("bench-api: another API benchmark holds the lock on this server")
    if not admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", [BENCH_DB]).fetchone():
        log(f"creating database {BENCH_DB}")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(BENCH_DB)))
    return admin


def reset_database(url: str) -> None:
    """Empty every table (a run leaves rides under way), then migrate (schedules, content types)."""
    with psycopg.connect(url, autocommit=True) as conn:
        tables = [
            row[0]
            for row in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
                " AND tablename <> 'django_migrations'"
            )
        ]
        if tables:
            names = sql.SQL(", ").join(sql.Identifier(t) for t in tables)
            conn.execute(sql.SQL("TRUNCATE {} RESTART IDENTITY CASCADE").format(names))
    subprocess.run(
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        cwd=ROOT,
        env={**os.environ, "DATABASE_URL": url, "DJANGO_SETTINGS_MODULE": "bimride.settings"},
        check=True,
        timeout=300,
    )


def seed() -> tuple[list[str], list[str]]:
    """Riders and available drivers near the pickup, with API tokens; return both token lists."""
    from django.contrib.auth import get_user_model
    from django.db import connections, transaction
    from rest_framework.authtoken.models import Token

    from rides.models import Driver, Rider

    User = get_user_model()
    with transaction.atomic():
        users = {}
        for role, count in (("rider", RIDERS), ("driver", DRIVERS)):
            users[role] = User.objects.bulk_create(
                User(username=f"{role}{n}@bench.example", email=f"{role}{n}@bench.example")
                for n in range(count)
            )
        Rider.objects.bulk_create(Rider(user=u, name=u.username) for u in users["rider"])
        Driver.objects.bulk_create(
            Driver(
                user=u,
                name=u.username,
                available=True,
                lat=52.52 + (n % 20 - 10) * 0.001,
                lng=13.405 + (n // 20 - 7) * 0.001,
            )
            for n, u in enumerate(users["driver"])
        )
        tokens = {}
        for role in ("rider", "driver"):
            made = Token.objects.bulk_create(
                Token(user=u, key=Token.generate_key()) for u in users[role]
            )
            tokens[role] = [t.key for t in made]
    connections.close_all()
    return tokens["rider"], tokens["driver"]


def job_backlog() -> dict[str, int]:
    """Jobs due and not finished, per queue (deferred ones, such as ride expiry, excluded)."""
    from django.db import connections
    from django.db.models import Count
    from django.utils import timezone

    from bimride.jobs.models import Job

    rows = (
        Job.objects.filter(state__in=["queued", "retrying", "running"], run_at__lte=timezone.now())
        .values("queue")
        .annotate(n=Count("id"))
    )
    backlog = {row["queue"]: row["n"] for row in rows}
    connections.close_all()
    return backlog


def job_totals() -> dict[str, int]:
    from django.db import connections
    from django.db.models import Count

    from bimride.jobs.models import Job

    totals = {r["state"]: r["n"] for r in Job.objects.values("state").annotate(n=Count("id"))}
    connections.close_all()
    return totals


# --- the processes ------------------------------------------------------------------------------
def start_services(phase: str, url: str, args, tmp: Path) -> tuple[list[Service], str]:
    """Stand-ins, workers and web for `phase`; return them and the web's base URL."""
    stripe_port, email_port, web_port = free_port(), free_port(), free_port()
    env = {
        "DATABASE_URL": url,
        "DJANGO_SETTINGS_MODULE": "bimride.settings",
        "DEBUG": "false",  # as in production: DEBUG records every query
        "LOG_LEVEL": "WARNING",
        "THROTTLE_RIDE_CREATE": "100000/min",
        "THROTTLE_USER": "1000000/min",
        "STRIPE_API_BASE": f"http://127.0.0.1:{stripe_port}",
        **PostmarkStandin.settings_at(email_port),  # the default provider's stand-in
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / f"metrics-{phase}"),
        "PYTHONUNBUFFERED": "1",
    }
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    py = sys.executable
    services = []
    try:
        stripe = [py, "-m", "devtools.stripe_standin", "--port", str(stripe_port)]
        services.append(Service("api-stripe", stripe, env))
        email = [py, "-m", "devtools.postmark_standin", "--port", str(email_port)]
        services.append(Service("api-postmark", email, env))
        for queue in QUEUES:
            command = [py, "manage.py", "qcluster"]
            services.append(Service(f"api-{queue}", command, {**env, "Q_CLUSTER_NAME": queue}))
        web = [py, "-m", "gunicorn", "bimride.wsgi", "-b", f"127.0.0.1:{web_port}"]
        web += ["-w", str(args.web_workers), "-k", args.worker_class, "--backlog", "2048"]
        web += ["--timeout", "60"] + (["--threads", str(args.threads)] if args.threads else [])
        settings_module = "bench.settings_before" if phase == "before" else "bimride.settings"
        services.append(Service("api-web", web, {**env, "DJANGO_SETTINGS_MODULE": settings_module}))
        base = f"http://127.0.0.1:{web_port}"
        wait_http(f"{base}/healthz", 60)
        wait_http(f"http://127.0.0.1:{email_port}/_standin/messages", 30)
        mode = {"mode": "slow", "delay": SLOW_PROVIDER_SECONDS} if phase == "before" else {}
        if mode:
            email_mode = f"http://127.0.0.1:{email_port}/_standin/mode"
            requests.post(email_mode, json=mode, timeout=5).raise_for_status()
        time.sleep(2)  # the qclusters connect and LISTEN
        dead = [s.name for s in services if not s.alive()]
        if dead:
            raise RuntimeError(f"{dead} exited at start; see .data/bench-<name>.log")
    except BaseException:
        stop_services(services)
        raise
    return services, base


def stop_services(services: list[Service]) -> None:
    for service in reversed(services):
        with contextlib.suppress(Exception):
            service.stop()


def web_worker_pids(web: Service) -> list[int]:
    """gunicorn's workers: the processes of its group other than the master."""
    return [pid for pid in web.pids() if pid != web.process.pid]


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time used so far by `pids` (those still alive)."""
    ticks = 0
    for pid in pids:
        with contextlib.suppress(OSError, IndexError, ValueError):
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def database_pids(url: str) -> list[int]:
    """The server processes of the benchmark's database (asked of the server itself)."""
    with psycopg.connect(admin_url(url, BENCH_DB), autocommit=True) as conn:
        rows = conn.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()",
            [BENCH_DB],
        ).fetchall()
    return [row[0] for row in rows]


class CpuMeter:
    """CPU seconds of web, workers and PostgreSQL backends (the load generator counts its own)."""

    def __init__(self, services: list[Service], url: str):
        self.services, self.url = services, url
        self.groups = {}

    def sample(self) -> dict[str, dict[int, float]]:
        groups = {
            "web": [p for s in self.services if s.name == "api-web" for p in s.pids()],
            "workers": [p for s in self.services if s.name in QUEUE_SERVICES for p in s.pids()],
            "postgres": database_pids(self.url),
        }
        return {name: {pid: cpu_seconds([pid]) for pid in pids} for name, pids in groups.items()}

    def used(self, first: dict, last: dict) -> dict[str, float]:
        return {
            name: round(sum(v - first[name].get(pid, 0.0) for pid, v in last[name].items()), 1)
            for name in last
        }


def start_profilers(web: Service, seconds: int, tmp: Path) -> list[subprocess.Popen]:
    spy = Path(sys.executable).parent / "py-spy"
    profilers = []
    for pid in web_worker_pids(web):
        out = tmp / f"py-spy-{pid}.txt"
        command = [str(spy), "record", "-d", str(seconds), "-r", "200", "-f", "raw"]
        command += ["-o", str(out), "--pid", str(pid), "--nonblocking"]
        profilers.append(
            subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        )
    return profilers


def summarize_profiles(tmp: Path, top: int = 25) -> dict:
    """Share of samples per function (inclusive) and per leaf, over all workers' raw stacks."""
    inclusive, leaf, total = {}, {}, 0
    for path in tmp.glob("py-spy-*.txt"):
        for line in path.read_text().splitlines():
            stack, _, count = line.rpartition(" ")
            if not count.isdigit():
                continue
            n, frames = int(count), stack.split(";")
            total += n
            for frame in set(frames):
                inclusive[frame] = inclusive.get(frame, 0) + n
            leaf[frames[-1]] = leaf.get(frames[-1], 0) + n

    def share(counts: dict) -> list:
        ranked = sorted(counts.items(), key=lambda kv: -kv[1])[:top]
        return [[frame, round(100 * n / total, 1)] for frame, n in ranked]

    return {"samples": total, "inclusive": share(inclusive), "leaf": share(leaf)} if total else {}


def warm_up(base: str, drivers: list[str], requests_count: int = 30) -> None:
    """A few sequential pings, so that every web worker has imported and connected before the
    clock starts (gunicorn loads the views on a worker's first request)."""
    for n in range(requests_count):
        headers = {"Authorization": f"Token {drivers[n % len(drivers)]}"}
        point = {"lat": 52.52, "lng": 13.405}
        requests.post(f"{base}/api/drivers/me/location", json=point, headers=headers, timeout=30)
