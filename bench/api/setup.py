"""Setup of `bench.api`: the releases compared (a temporary git worktree for the baseline),
their databases and seed data, their processes (web, workers, stand-ins), the CPU each uses,
and py-spy profiles of the web workers."""

import contextlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
import traceback
from dataclasses import dataclass
from pathlib import Path

import psycopg
import requests
from psycopg import sql

from bench.common.procs import ROOT, Service, kill_leftovers
from bench.common.runs import admin_url, with_database
from devtools.postmark_standin import PostmarkStandin
from devtools.supervisor import free_port, stop_all, wait_http

BENCH_DB = "bimride_bench_api"
LOCK_KEY = 0x62656E6361  # pg_advisory_lock: one API benchmark at a time per server
QUEUES = ("critical", "default", "bulk")
QUEUE_SERVICES = {f"api-{queue}" for queue in QUEUES}
STANDIN_SERVICES = {"api-stripe", "api-postmark"}
SLOW_PROVIDER_SECONDS = 2.0  # the email (Postmark) stand-in's answer time in the "before" phase
BASELINE_DIR = ROOT / ".data" / "bench-baseline"


def log(message: str) -> None:
    print(f"bench-api: {message}", flush=True)


def git(*args: str) -> str:
    return subprocess.run(
        ["git", *args], cwd=ROOT, check=True, capture_output=True, text=True, timeout=120
    ).stdout.strip()


@dataclass
class Arm:
    """A release measured: its code (`root`: the web's and workers' working directory and
    PYTHONPATH) and its template database (migrated and seeded by that code)."""

    name: str  # "A" (the baseline) or "B" (this tree)
    label: str
    root: Path
    tokens: dict | None = None

    @property
    def template(self) -> str:
        return f"{BENCH_DB}_tpl_{self.name.lower()}"


def current_arm() -> Arm:
    dirty = " + uncommitted changes" if git("status", "--porcelain", "--untracked-files=no") else ""
    return Arm("B", f"{git('rev-parse', '--short', 'HEAD')}{dirty} (this tree)", ROOT)


@contextlib.contextmanager
def baseline_worktree(ref: str):
    """The release `ref` checked out in a temporary worktree (.data/bench-baseline), removed on
    the way out; the project's interpreter and packages run it (same requirements)."""
    remove_worktree()
    commit = git("rev-parse", "--verify", f"{ref}^{{commit}}")
    git("worktree", "add", "--detach", str(BASELINE_DIR), commit)
    try:
        yield Arm("A", f"{ref} ({commit[:7]}, baseline)", BASELINE_DIR)
    finally:
        remove_worktree()


def remove_worktree() -> None:
    if BASELINE_DIR.exists():
        with contextlib.suppress(subprocess.CalledProcessError):
            git("worktree", "remove", "--force", str(BASELINE_DIR))
    git("worktree", "prune")
    if BASELINE_DIR.exists():
        raise RuntimeError(f"could not remove the worktree {BASELINE_DIR}; remove it by hand")


def arm_env(arm: Arm) -> dict[str, str]:
    return {"PYTHONPATH": str(arm.root), "DJANGO_SETTINGS_MODULE": "bimride.settings"}


def check_code(arm: Arm) -> None:
    """Fail unless the arm's processes import the product from the arm's tree."""
    found = subprocess.run(
        [sys.executable, "-c", "import bimride, rides; print(bimride.__file__, rides.__file__)"],
        cwd=arm.root,
        env={**os.environ, **arm_env(arm)},
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.split()
    if not all(Path(f).resolve().is_relative_to(arm.root.resolve()) for f in found):
        raise RuntimeError(f"{arm.name} imports the product from {found}, not from {arm.root}")


# --- the database -------------------------------------------------------------------------------
def lock_server(base_url: str) -> psycopg.Connection:
    admin = psycopg.connect(admin_url(base_url), autocommit=True)
    if not admin.execute("SELECT pg_try_advisory_lock(%s)", [LOCK_KEY]).fetchone()[0]:
        raise SystemExit("bench-api: another API benchmark holds the lock on this server")
    return admin


@contextlib.contextmanager
def held_run(base_url: str, name: str, say=log):
    """A benchmark's run on the server of `base_url`: its lock held, a temporary directory
    listing the process groups it starts (BENCH_PIDFILE); yields what the run needs (`admin`,
    `base_url`, `url` of BENCH_DB, `tmp`). On the way out, whatever happens, every process still
    listed is killed and the lock released; a failure is logged and exits with status 1."""
    admin = lock_server(base_url)
    tmp = Path(tempfile.mkdtemp(prefix=f"{name}-"))
    os.environ["BENCH_PIDFILE"] = str(tmp / "pids")
    try:
        yield {
            "admin": admin,
            "base_url": base_url,
            "url": with_database(base_url, BENCH_DB),
            "tmp": tmp,
        }
    except Exception as error:
        say(f"FAILED: {error!r}; the processes' logs are .data/bench-*.log")
        traceback.print_exc()
        raise SystemExit(1) from error
    finally:
        killed = kill_leftovers(tmp / "pids")
        if killed:
            say(f"killed leftover process groups {killed}")
        with contextlib.suppress(psycopg.Error):
            admin.close()


def recreate(admin: psycopg.Connection, name: str, template: str | None = None) -> None:
    admin.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
    create = sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name))
    if template:
        create += sql.SQL(" TEMPLATE {}").format(sql.Identifier(template))
    admin.execute(create)


def prepare_template(admin: psycopg.Connection, base_url: str, arm: Arm) -> None:
    """The arm's template database: created empty, migrated and seeded by the arm's own code."""
    log(f"{arm.name}: migrating and seeding {arm.template} with {arm.root}")
    recreate(admin, arm.template)
    env = {**os.environ, **arm_env(arm), "DATABASE_URL": with_database(base_url, arm.template)}
    run = {"cwd": arm.root, "env": env, "check": True, "timeout": 300}
    subprocess.run([sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"], **run)
    seeded = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "api" / "seed.py")], **run, capture_output=True
    )
    arm.tokens = json.loads(seeded.stdout)


def fresh_database(admin: psycopg.Connection, arm: Arm) -> None:
    """`bimride_bench_api` anew, a copy of the arm's migrated and seeded template."""
    recreate(admin, BENCH_DB, arm.template)


def drop_databases(admin: psycopg.Connection, arms: list[Arm]) -> None:
    for name in [BENCH_DB, *(arm.template for arm in arms)]:
        with contextlib.suppress(psycopg.Error):
            admin.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _count(url: str, query: str) -> dict[str, int]:
    with psycopg.connect(url, autocommit=True) as conn:
        return dict(conn.execute(query).fetchall())


def job_backlog(url: str) -> dict[str, int]:
    """Jobs due and not finished, per queue (deferred ones, not yet due, excluded)."""
    return _count(
        url,
        "SELECT queue, count(*) FROM jobs_job WHERE state IN ('queued', 'retrying', 'running')"
        " AND run_at <= now() GROUP BY queue",
    )


def job_totals(url: str) -> dict[str, int]:
    return _count(url, "SELECT state, count(*) FROM jobs_job GROUP BY state")


# --- the processes ------------------------------------------------------------------------------
def start_services(
    arm: Arm,
    url: str,
    args,
    tmp: Path,
    settings: str = "bimride.settings",
    slow: bool = False,
    standin_env: dict[str, str] | None = None,
) -> tuple[list[Service], str]:
    """Stand-ins (this tree's), then the arm's workers and web; return them and the web's base
    URL. `slow`: the email stand-in answers in SLOW_PROVIDER_SECONDS. `standin_env`: the
    stand-ins' own environment on top (STRIPE_STANDIN_LATENCY, EMAIL_STANDIN_LATENCY, …)."""
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
        "PROMETHEUS_MULTIPROC_DIR": str(tmp / "metrics"),
        "PYTHONUNBUFFERED": "1",
    }
    product = {**env, **arm_env(arm), **dict(kv.split("=", 1) for kv in args.env)}
    Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(exist_ok=True)
    py = sys.executable
    services = []
    try:
        standins = {**env, **(standin_env or {})}
        stripe = [py, "-m", "devtools.stripe_standin", "--port", str(stripe_port)]
        services.append(Service("api-stripe", stripe, standins))
        email = [py, "-m", "devtools.postmark_standin", "--port", str(email_port)]
        services.append(Service("api-postmark", email, standins))
        for queue in QUEUES:
            command = [py, "manage.py", "qcluster"]
            queue_env = {**product, "Q_CLUSTER_NAME": queue}
            services.append(Service(f"api-{queue}", command, queue_env, cwd=arm.root))
        web = [py, "-m", "gunicorn", "bimride.wsgi", "-b", f"127.0.0.1:{web_port}"]
        web += ["-w", str(args.web_workers), "-k", args.worker_class, "--backlog", "2048"]
        web += ["--timeout", "60"] + (["--threads", str(args.threads)] if args.threads else [])
        web += shlex.split(args.web_args)
        web_env = {**product, "DJANGO_SETTINGS_MODULE": settings}
        services.append(Service("api-web", web, web_env, cwd=arm.root))
        base = f"http://127.0.0.1:{web_port}"
        wait_http(f"{base}/healthz", 60, process=services[-1])
        wait_http(f"http://127.0.0.1:{email_port}/_standin/messages", 30)
        if slow:
            email_mode = f"http://127.0.0.1:{email_port}/_standin/mode"
            mode = {"mode": "slow", "delay": SLOW_PROVIDER_SECONDS}
            requests.post(email_mode, json=mode, timeout=5).raise_for_status()
        time.sleep(2)  # the qclusters connect and LISTEN
        dead = [s.name for s in services if not s.alive()]
        if dead:
            raise RuntimeError(f"{dead} exited at start; see .data/bench-<name>.log")
    except BaseException:
        stop_services(services)
        raise
    return services, base


def wait_quiet(base: str, url: str, limit: float) -> float:
    """Wait (at most `limit` s) until no job is due and the web answers at once (its queue of
    requests the load left behind is gone); return the seconds waited."""
    started = time.monotonic()
    while time.monotonic() - started < limit:
        with contextlib.suppress(requests.RequestException):
            if not sum(job_backlog(url).values()):
                sent = time.monotonic()
                requests.get(f"{base}/healthz", timeout=5)
                if time.monotonic() - sent < 0.05:
                    break
        time.sleep(0.5)
    return time.monotonic() - started


def stop_services(services: list[Service]) -> None:
    """Stop them all within one grace period (web first), then unlist them."""
    with contextlib.suppress(Exception):
        stop_all(list(reversed(services)))
    for service in services:
        with contextlib.suppress(Exception):
            service.stop(grace=0)  # stopped already: only takes it off the pid file


def web_worker_pids(web: Service) -> list[int]:
    """gunicorn's workers: the processes of its group other than the master."""
    return [pid for pid in web.pids() if pid != web.process.pid]


def stat(pid: int) -> list[str]:
    """The fields of /proc/<pid>/stat after the command's name (state, ppid, …)."""
    return Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time used so far by `pid` and by its children it has reaped (0 when it
    is gone): a short-lived child (a PostgreSQL backend of a connection closed meanwhile, a
    recycled worker) is counted in its parent once it exits."""
    with contextlib.suppress(OSError, IndexError, ValueError):
        return sum(int(f) for f in stat(pid)[11:15]) / os.sysconf("SC_CLK_TCK")
    return 0.0


def server_pids(url: str) -> list[int]:
    """PostgreSQL's processes (the postmaster and all its children: backends of every
    connection, however short, I/O workers, WAL writer, checkpointer, autovacuum); [] when the
    server is not on this machine."""
    with psycopg.connect(admin_url(url), autocommit=True) as conn:
        backend = conn.execute("SELECT pg_backend_pid()").fetchone()[0]
        with contextlib.suppress(OSError, IndexError, ValueError):
            postmaster = int(stat(backend)[1])
            children = []
            for entry in os.scandir("/proc"):
                if entry.name.isdigit():
                    with contextlib.suppress(OSError, IndexError, ValueError):
                        if int(stat(int(entry.name))[1]) == postmaster:
                            children.append(int(entry.name))
            return [postmaster, *children]
    return []


class CpuMeter:
    """CPU seconds of web, workers, PostgreSQL and the stand-ins (the load generator counts its
    own): each group's total is its live processes' own and reaped children's time, so the
    difference of two samples counts processes that started or ended in between too."""

    def __init__(self, services: list[Service], url: str):
        self.services, self.url = services, url

    def sample(self) -> dict[str, float]:
        groups = {
            "web": [p for s in self.services if s.name == "api-web" for p in s.pids()],
            "workers": [p for s in self.services if s.name in QUEUE_SERVICES for p in s.pids()],
            "postgres": server_pids(self.url),
            "stand-ins": [p for s in self.services if s.name in STANDIN_SERVICES for p in s.pids()],
        }
        return {name: sum(cpu_seconds(pid) for pid in pids) for name, pids in groups.items()}

    def used(self, first: dict, last: dict) -> dict[str, float]:
        return {name: round(last[name] - first[name], 2) for name in last}


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
