"""Scenario 7 of `bench.reliability`: three hosts on one PostgreSQL, through one PgBouncer.

Each host is a full set, as deployed: gunicorn (2 workers) and one `qcluster` per queue (1
worker each), with its own PROMETHEUS_MULTIPROC_DIR and JOB_WORKER_HOST, every connection
through one PgBouncer in transaction mode (DB_TRANSACTION_POOLER=1). Riders and drivers run the
ride flow against the hosts' web servers in turn, while a stream of slow effect jobs (a quarter
of them deferred) keeps the workers busy. Mid-run host3 is SIGKILLed whole (frozen with SIGSTOP,
then every process of it killed) and never restarted; the load goes on against the other two.
The survivors finish its work: the jobs it was running once their lease expires and the jobs
its clusters had taken from the broker after JOB_STALL_AFTER_SECONDS (both handed back by the
relay, a cron job they run), its deferred jobs when due.

The accounting is done at the providers and in the ledger (bench/reliability/accounts.py).
"""

import contextlib
import os
import shutil
import signal
import threading
import time
from datetime import timedelta

import requests
from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from bench.reliability.accounts import FINISHED, Accounting
from bench.reliability.faults import Result
from bench.reliability.http import RIDE_BODY, make_actor
from bench.reliability.jobtypes import NAME, create_effects_table
from bench.reliability.procs import LOG_DIR, Proc, Processes, say
from bench.reliability.providers import COMPLETE_BODY
from bimride.jobs.engine.broker import QUEUE_TABLE, job_of
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.models import Job
from devtools.pgbouncer import PgBouncer
from devtools.postmark_standin import PostmarkStandin
from devtools.stripe_standin import StripeStandin

QUEUES = ("critical", "default", "bulk")
STALL_AFTER = 10  # JOB_STALL_AFTER_SECONDS of the scenario (60 by default)
RIDE_EXPIRY = 30  # seconds: the expiry sweeps cancel rides during the run, after the kill too
EFFECT_SLEEP = 0.4  # seconds an effect job works: a kill finds jobs running and prefetched
STEPS = (("accept", None, "accepted"), ("start", None, "in_progress"))
STEPS += (("complete", COMPLETE_BODY, "completed"),)


class Host:
    """One host's processes: gunicorn and a qcluster per queue, sharing a label and a metrics
    directory, as on a machine of their own."""

    def __init__(self, number: int, procs: Processes, env: dict[str, str], workers=1, prefix="s7"):
        self.label, self.workers, self.prefix = f"host{number}", workers, prefix
        self.metrics = LOG_DIR / "hosts" / f"{self.label}-metrics"
        shutil.rmtree(self.metrics, ignore_errors=True)
        self.metrics.mkdir(parents=True)
        self.env = {
            **env,
            "JOB_WORKER_HOST": self.label,
            "PROMETHEUS_MULTIPROC_DIR": str(self.metrics),
        }
        self.procs = procs
        self.members: list[Proc] = []
        self.base = ""

    def start(self) -> None:
        for queue in QUEUES:
            name = f"{self.prefix}-{self.label}-{queue}"
            self.members.append(self.procs.qcluster(name, queue, self.workers, self.env))
        name = f"{self.prefix}-{self.label}-web"
        web, self.base = self.procs.web(name, self.env, workers=2, threads=8)
        self.members.append(web)

    def kill(self) -> int:
        """Freeze every process of the host at once, then SIGKILL them all; return how many."""
        pids = [pid for proc in self.members for pid in proc.pids()]
        for proc in self.members:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGSTOP)
        for proc in self.members:
            proc.kill()
        return len(pids)


class Balancer:
    """Round robin over the live web servers, as a load balancer does; `remove` takes a dead
    host out of the rotation."""

    def __init__(self, hosts: list[Host]):
        self.live = {host.base: host.label for host in hosts}
        self.dead: set[str] = set()
        self.lock = threading.Lock()
        self.n = 0

    def pick(self) -> tuple[str, str]:
        with self.lock:
            bases = sorted(self.live)
            self.n += 1
            base = bases[self.n % len(bases)]
            return base, self.live[base]

    def remove(self, host: Host) -> None:
        with self.lock:
            self.live.pop(host.base, None)
            self.dead.add(host.base)


class RideLoad:
    """Pairs of a rider and a driver, each pair riding again and again through the API:
    request, accept, start, complete. A request cut by a host's death is sent again to another
    host (ride requests carry an Idempotency-Key; a repeated transition that had gone through
    answers 409 and the ride's state says so)."""

    def __init__(self, balancer: Balancer, pairs: list[tuple]):
        self.balancer, self.pairs = balancer, pairs
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records: list[tuple[str, str, int, str]] = []  # (host, what, status, text)
        self.cut: list[tuple[str, str]] = []  # requests that died with their host
        self.rides: list[int] = []
        self.completed: list[int] = []
        self.broken: list[str] = []
        self.threads = [
            threading.Thread(target=self.run, args=(i, *pair), daemon=True)
            for i, pair in enumerate(pairs)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=90)

    def call(self, actor, method: str, path: str, body=None, key: str = ""):
        """Send one request; on a connection error try another host (up to 3 more times).
        Returns (response or None, whether it was sent again)."""
        headers = {**actor.headers, **({"Idempotency-Key": key} if key else {})}
        for attempt in range(4):
            base, label = self.balancer.pick()
            try:  # a new connection each time: no keep-alive race with a server closing it
                response = requests.request(
                    method, base + path, json=body, headers=headers, timeout=30
                )
            except requests.RequestException as error:
                with self.lock:
                    if base in self.balancer.dead:
                        self.cut.append((label, f"{method} {path}"))
                    else:
                        self.records.append((label, f"{method} {path}", 0, repr(error)[:160]))
                continue
            with self.lock:
                self.records.append(
                    (label, what(method, path), response.status_code, response.text[:160])
                )
            return response, attempt > 0
        return None, True

    def run(self, i: int, rider, driver) -> None:
        n = 0
        while not self.stop.is_set():
            n += 1
            created, _ = self.call(rider, "POST", "/api/rides", RIDE_BODY, f"s7-{i}-{n}")
            if created is None or created.status_code != 201:
                self.stop.wait(1)
                continue
            ride = created.json()["id"]
            with self.lock:
                self.rides.append(ride)
            time.sleep(0.3)
            if self.ride(rider, driver, ride):
                with self.lock:
                    self.completed.append(ride)
            self.stop.wait(0.5)

    def ride(self, rider, driver, ride: int) -> bool:
        for step, body, state in STEPS:
            answer, again = self.call(driver, "POST", f"/api/rides/{ride}/{step}", body)
            done = answer is not None and answer.status_code == 200
            if not done and again and answer is not None and answer.status_code == 409:
                seen, _ = self.call(rider, "GET", f"/api/rides/{ride}")
                done = seen is not None and seen.ok and seen.json().get("status") == state
            if not done:
                code = answer.status_code if answer is not None else "no answer"
                with self.lock:
                    self.broken.append(f"ride {ride} {step}: {code}")
                return False
            time.sleep(0.2)
        return True


def what(method: str, path: str) -> str:
    """A request's kind: the path with its ride id taken out."""
    parts = ["{id}" if part.isdigit() else part for part in path.split("/")]
    return f"{method} {'/'.join(parts)}"


class Effects:
    """A thread enqueueing slow effect jobs, a quarter of them deferred by 5-25 s."""

    def __init__(self, per_second: int):
        self.per_second = per_second
        self.ids: list[int] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)
        self.errors: list[str] = []

    def run(self) -> None:
        n = 0
        try:
            while not self.stop.is_set():
                with transaction.atomic():
                    for _ in range(self.per_second):
                        n += 1
                        delay = timedelta(seconds=5 + n % 21) if n % 4 == 0 else None
                        job = enqueue(NAME, {"n": 700_000 + n, "sleep": EFFECT_SLEEP}, delay=delay)
                        self.ids.append(job.pk)
                self.stop.wait(1)
        except Exception as error:  # noqa: BLE001 - reported in the result
            self.errors.append(repr(error))
        finally:
            connection.close()


def taken_from_broker() -> set[int]:
    """Due jobs not started whose broker row a pusher took within the last minute."""
    retry = settings.Q_CLUSTER["retry"]
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT payload FROM {QUEUE_TABLE} WHERE lock > now() + make_interval(secs => %s)",
            [retry - 60],
        )
        ids = {job_of(payload) for (payload,) in cursor.fetchall()} - {None}
    due = Job.objects.filter(
        pk__in=ids, state__in=["queued", "retrying"], run_at__lte=timezone.now()
    )
    return set(due.values_list("pk", flat=True))


def many_hosts(procs: Processes, cfg) -> Result:
    result = Result("7. many hosts")
    create_effects_table()
    # The three hosts are all there is: the earlier scenarios' web server and clusters (with
    # stand-ins of their own, stopped) would take jobs from the same queues.
    procs.stop_all()
    direct = os.environ["DATABASE_URL"]
    pooler = PgBouncer(direct, pool_size=20, max_client_conn=500)
    stripe, email = StripeStandin().start(), PostmarkStandin().start()
    listen = hasattr(settings, "JOB_LISTEN_DATABASE_URL")
    try:
        url = pooler.start()
        env = {
            "DATABASE_URL": url,
            "DB_TRANSACTION_POOLER": "1",
            "JOB_LISTEN_DATABASE_URL": direct,  # the workers' LISTEN, where supported
            "JOB_STALL_AFTER_SECONDS": str(STALL_AFTER),
            # The product's back-offs: a capture waits for an authorisation that the dead host
            # had taken (released after the stall time and the next minute's relay) by retrying
            # for minutes, as in production; the bench's usual 0.01 would dead-letter it.
            "JOB_RETRY_SCALE": "1.0",
            "RIDE_EXPIRY_SECONDS": str(RIDE_EXPIRY),
            "Q_WORKERS_CRITICAL": "1",
            "Q_WORKERS_DEFAULT": "1",
            "Q_WORKERS_BULK": "1",
            "STRIPE_API_BASE": stripe.api_base,
            **email.settings(),  # the email provider's anymail backend, talking to the stand-in
        }
        since = timezone.now()
        first_job = Job.objects.order_by("-id").values_list("id", flat=True).first() or 0
        hosts = [Host(number, procs, env) for number in (1, 2, 3)]
        for host in hosts:
            host.start()
        say(f"  3 hosts up through PgBouncer {url.rsplit('@', 1)[1]}: {[h.base for h in hosts]}")
        pairs = [
            (make_actor("rider", f"s7r{i}"), make_actor("driver", f"s7d{i}"))
            for i in range(cfg.hosts_pairs)
        ]
        balancer = Balancer(hosts)
        load, effects = RideLoad(balancer, pairs), Effects(cfg.hosts_effects_per_second)
        started = time.monotonic()
        load.start()
        effects.thread.start()
        time.sleep(cfg.hosts_kill_after)
        victim = hosts[2]
        kill = kill_host(victim, balancer)
        time.sleep(max(0.0, cfg.hosts_load_seconds - (time.monotonic() - started)))
        load.finish()
        effects.stop.set()
        effects.thread.join(timeout=30)
        say(f"  load over after {time.monotonic() - started:.0f}s: {len(load.completed)} rides")
        drain(first_job, cfg.hosts_drain_timeout)
        books = Accounting(result, first_job, kill, stripe, email, load.rides)
        books.providers(load)
        books.ledger(effects.ids, effects.errors)
        books.cron(since=since)
        books.hosts(hosts, victim)
        result.load = (
            f"{len(load.rides)} rides via 3 web servers (2 after the kill), {len(effects.ids)}"
            f" effect jobs; 3 hosts x (gunicorn 2 + 3 qclusters x 1 worker)"
        )
        result.faults = (
            f"host3 SIGKILLed whole ({kill['processes']} processes) at"
            f" {cfg.hosts_kill_after:.0f}s, never restarted"
        )
        result.notes.append(
            "workers LISTEN on JOB_LISTEN_DATABASE_URL (direct)"
            if listen
            else "workers in polling mode: this release has no JOB_LISTEN_DATABASE_URL"
        )
    finally:
        for host in locals().get("hosts", []):
            for proc in host.members:
                proc.stop()
        pooler.stop()
        stripe.stop()
        email.stop()
    return result


def kill_host(victim: Host, balancer: Balancer) -> dict:
    """Wait (up to 10 s) until the victim runs an effect job, then kill it whole; return what
    it held: the jobs it was running and those its clusters had taken from the broker."""
    deadline = time.monotonic() + 10
    mine = Job.objects.filter(state="running", worker__startswith=f"{victim.label}:")
    while not mine.filter(name=NAME).exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    with balancer.lock:  # what fails on it from now on was cut by its death
        balancer.dead.add(victim.base)
    processes = victim.kill()
    at = timezone.now()
    balancer.remove(victim)
    running = set(mine.values_list("pk", flat=True))
    taken = taken_from_broker()
    say(f"  killed {victim.label} whole ({processes} processes), running {len(running)} job(s)")
    time.sleep(STALL_AFTER - 1)  # the live hosts start what they took; the dead host's stay
    taken &= taken_from_broker()
    say(f"  it had taken {len(taken)} job(s) from the broker that nobody started since")
    return {"at": at, "processes": processes, "running": running, "taken": taken}


def drain(first_job: int, timeout: float) -> None:
    """Wait until every job since `first_job` finished (deferred ones included), or timeout."""
    jobs = Job.objects.filter(pk__gt=first_job)
    deadline, last = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        left = jobs.exclude(state__in=FINISHED).count()
        if not left:
            return
        if left != last:
            say(f"  {left} job(s) not finished yet")
            last = left
        time.sleep(2)
