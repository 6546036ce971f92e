"""Scenarios 1 and 2 of `bench.reliability`: workers SIGKILLed under load, PostgreSQL restarted.

Both end with an accounting per job id: the job succeeded, its effect row exists exactly once,
and nothing was dead-lettered.
"""

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

import requests
from django.db import connection, connections, transaction
from django.db.models import Count
from django.db.utils import DatabaseError
from django.utils import timezone

from bench.reliability.jobtypes import NAME, create_effects_table, effect_counts
from bench.reliability.procs import Proc, Processes, devdb, say
from bimride.jobs.engine.broker import QUEUE_TABLE, job_of
from bimride.jobs.engine.enqueue import enqueue
from bimride.jobs.engine.relay import relay
from bimride.jobs.models import DeadLetter, Job, JobEvent

WEDGED_AFTER = 8  # seconds without a started job, while due jobs wait, before a restart
BROKER_RETRY = 360  # django-q2 `retry` (JOB_MAX_TIMEOUT + 60): redelivery of unacked tasks


@dataclass
class Result:
    scenario: str
    load: str = ""
    faults: str = ""
    jobs: int | str = "-"
    lost: int | str = "-"
    duplicated: int | str = "-"
    errors_5xx: int | str = "-"
    status: str = "pass"
    notes: list[str] = field(default_factory=list)

    def fail(self, note: str) -> None:
        self.status = "FAIL"
        self.notes.append(note)


def enqueue_batch(first: int, count: int, sleep: float) -> list[int]:
    """Enqueue `count` effect jobs in transactions of 250; return their ids."""
    ids = []
    for start in range(first, first + count, 250):
        with transaction.atomic():
            for n in range(start, min(start + 250, first + count)):
                ids.append(enqueue(NAME, {"n": n, "sleep": sleep}).pk)
    return ids


def safe_relay() -> None:
    try:
        relay()
    except DatabaseError:
        connections.close_all()


def account(result: Result, ids: list[int], delayed: dict[int, int] | None = None) -> None:
    """Fill jobs/lost/duplicated: every job succeeded with exactly one effect, no dead letter.

    `delayed` jobs (not run yet, but held in the broker for redelivery) are not counted lost;
    the result is "delayed" instead of "pass" when there are any."""
    delayed = delayed or {}
    states = Counter(Job.objects.filter(pk__in=ids).values_list("state", flat=True))
    counts = effect_counts(ids)
    missing = [i for i in ids if counts.get(i, 0) == 0 and i not in delayed]
    doubled = [i for i in ids if counts.get(i, 0) > 1]
    dead = DeadLetter.objects.filter(job_id__in=ids).count()
    runs = dict(
        JobEvent.objects.filter(job_id__in=ids, state="running")
        .values_list("job_id")
        .annotate(n=Count("id"))
    )
    attempts = dict(Job.objects.filter(pk__in=ids).values_list("id", "attempts"))
    double_claims = sum(1 for i in ids if runs.get(i, 0) != attempts[i])
    result.jobs, result.lost, result.duplicated = len(ids), len(missing), len(doubled)
    result.notes.append(
        "states "
        + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        + f"; dead letters {dead}; attempts>1: {sum(1 for a in attempts.values() if a > 1)}"
    )
    if missing:
        result.fail(f"{len(missing)} job(s) without effect, e.g. {missing[:5]}")
    if doubled:
        result.fail(f"{len(doubled)} job(s) with a doubled effect, e.g. {doubled[:5]}")
    if dead:
        result.fail(f"{dead} dead letter(s)")
    not_done = len(ids) - states.get("succeeded", 0) - len(delayed)
    if not_done:
        result.fail(f"{not_done} job(s) not succeeded")
    if delayed and result.status == "pass":
        result.status = "delayed"
        result.lost = f"0 ({len(delayed)} delayed)"
    if double_claims:
        result.fail(f"{double_claims} job(s) whose attempts != claims (run twice at once?)")


def unfinished(ids: list[int]) -> int:
    return Job.objects.filter(pk__in=ids).exclude(state="succeeded").count()


def drain(ids: list[int], deadline: float, relay_every: float = 2.0, on_tick=None) -> int:
    """Run the relay every ~2 s until every job succeeded or the deadline; return unfinished."""
    left = unfinished(ids)
    last = -1
    while left and time.monotonic() < deadline:
        safe_relay()
        if on_tick is not None:
            on_tick()
        time.sleep(relay_every)
        left = unfinished(ids)
        if left != last:
            say(f"  {len(ids) - left}/{len(ids)} jobs succeeded")
            last = left
    return left


class Chaos:
    """Kill a random worker every 2-3 s; kill and restart a whole cluster now and then."""

    def __init__(self, procs: Processes, clusters: list[Proc], workers: int, cluster_kills: int):
        self.procs, self.clusters, self.workers = procs, clusters, workers
        self.cluster_kills_left = cluster_kills
        self.rng = random.Random(11)
        self.worker_kills = self.cluster_kills = self.wedges = 0
        self.last_cluster_kill = 0.0
        self.restarts = 0
        self.started = [time.monotonic()] * len(clusters)

    def victims(self) -> list[int]:
        """Worker processes of our clusters: those that ran a job of ours (Job.worker
        "host:pid"), preferring the ones running one now. Pushers and monitors are spared."""
        groups = {pid for c in self.clusters if c.alive() for pid in c.group()}
        jobs = Job.objects.filter(name=NAME, started_at__isnull=False)
        running = {_pid(w) for w in jobs.filter(state="running").values_list("worker", flat=True)}
        busy = sorted(running & groups)
        if busy:
            return busy
        recent = jobs.order_by("-started_at").values_list("worker", flat=True)[:200]
        return sorted({_pid(w) for w in recent} & groups)

    def kill_worker(self) -> None:
        victims = self.victims()
        if victims:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.rng.choice(victims), signal.SIGKILL)
                self.worker_kills += 1

    def kill_cluster(self) -> None:
        i = self.rng.randrange(len(self.clusters))
        self.restart(i, "killed and restarted a whole qcluster")
        self.cluster_kills += 1
        self.cluster_kills_left -= 1
        self.last_cluster_kill = time.monotonic()

    def restart(self, i: int, why: str) -> None:
        self.clusters[i].kill()
        self.restarts += 1
        name = f"s1-cluster{i + 1}-r{self.restarts}"
        self.clusters[i] = self.procs.qcluster(name, "default", self.workers, {})
        self.started[i] = time.monotonic()
        say(f"  {why} ({name})")

    def restart_wedged(self) -> None:
        """A cluster whose workers started no job for WEDGED_AFTER s while due jobs wait is
        wedged (see the report); restart it, as a supervisor with a liveness probe would."""
        now = time.monotonic()
        with connection.cursor() as cursor:  # a task due for 2 s that no pusher took
            cursor.execute(
                f"SELECT EXISTS (SELECT 1 FROM {QUEUE_TABLE} WHERE key = 'default'"
                " AND lock < now() - interval '2 seconds')"
            )
            if not cursor.fetchone()[0]:
                return
        since = timezone.now() - timedelta(seconds=WEDGED_AFTER)
        recent = Job.objects.filter(started_at__gte=since).values_list("worker", flat=True)
        active = {_pid(w) for w in recent}
        for i, cluster in enumerate(self.clusters):
            if now - self.started[i] < WEDGED_AFTER + 5:
                continue
            if not active & set(cluster.group()):
                self.wedges += 1
                self.restart(i, f"qcluster wedged (no job started for {WEDGED_AFTER}s); restarted")


def _pid(worker: str) -> int:
    return int(worker.rsplit(":", 1)[1]) if ":" in worker else 0


def worker_crashes(procs: Processes, cfg) -> Result:
    """Scenario 1: N jobs, 2 qclusters, SIGKILLs every 2-3 s, a relay every ~2 s."""
    result = Result("1. worker crashes")
    create_effects_table()
    clusters = [procs.qcluster(f"s1-cluster{i}", "default", cfg.workers, {}) for i in (1, 2)]
    chaos = Chaos(procs, clusters, cfg.workers, cfg.cluster_kills)
    ids: list[int] = []
    errors: list[BaseException] = []

    def producer() -> None:
        try:
            for first in range(0, cfg.jobs, 500):
                ids.extend(enqueue_batch(first, min(500, cfg.jobs - first), cfg.job_sleep))
        except BaseException as error:  # noqa: BLE001 - reported below
            errors.append(error)
        finally:
            connection.close()

    started = time.monotonic()
    thread = threading.Thread(target=producer, daemon=True)
    thread.start()
    next_kill = started + 3
    next_relay = started + 2
    next_cluster_kill = started + cfg.cluster_kill_after
    deadline = started + cfg.load_timeout
    last_left, last_change = -1, started
    while time.monotonic() < deadline:
        now = time.monotonic()
        if now >= next_kill:
            chaos.kill_worker()
            next_kill = now + chaos.rng.uniform(2, 3)
        if chaos.cluster_kills_left and now >= next_cluster_kill:
            chaos.kill_cluster()
            next_cluster_kill = now + cfg.cluster_kill_every
        if now >= next_relay:
            safe_relay()
            chaos.restart_wedged()
            next_relay = now + 2
        if not thread.is_alive():
            left = unfinished(ids)
            if left != last_left:
                last_left, last_change = left, now
            if not left or now - last_change > 10:  # done, or only broker-held jobs remain
                break
        time.sleep(0.2)
    thread.join(timeout=60)
    load_s = time.monotonic() - started
    say(
        f"  load phase {load_s:.0f}s: {chaos.worker_kills} worker kills, "
        f"{chaos.cluster_kills} cluster kills; {unfinished(ids)} jobs left"
    )
    probe = enqueue_batch(cfg.jobs, 100, 0)  # do the clusters still take new work?
    probe_left = drain(probe, time.monotonic() + 40, 0.5, chaos.restart_wedged)
    result.notes.append(f"after the chaos {100 - probe_left} of 100 new jobs ran within 40 s")
    ids += probe
    left = stranded_at_load_end = unfinished(ids)
    if left:
        # Tasks a killed cluster had prefetched stay locked in the broker until django-q2
        # redelivers them (BROKER_RETRY after the dequeue). Wait for that if allowed.
        patience = cfg.drain_timeout
        if cfg.wait_for_broker_retry:
            redelivery = max(broker_held(ids).values(), default=0) + 30
            patience = min(max(patience, redelivery), cfg.deadline - time.monotonic() - cfg.reserve)
        say(f"  draining {left} job(s) for up to {patience:.0f}s (relay every 2 s)")
        left = drain(ids, time.monotonic() + patience, 2.0, chaos.restart_wedged)
    total_s = time.monotonic() - started
    result.load = f"{cfg.jobs} jobs, 2 qclusters x {cfg.workers} workers"
    result.faults = f"{chaos.worker_kills} worker SIGKILLs, {chaos.cluster_kills} cluster SIGKILLs"
    if chaos.wedges:
        result.fail(
            f"{chaos.wedges} qcluster wedge(s): after a worker SIGKILL no worker took a task"
            f" for {WEDGED_AFTER}s (restarted by the bench to go on measuring)"
        )
    result.errors_5xx = "n/a"
    if errors:
        result.fail(f"enqueueing failed: {errors[0]!r}")
    held = broker_held(ids) if left else {}
    if left:
        result.notes.append(
            f"{left} job(s) unfinished after {total_s:.0f}s, {len(held)} of them queued with a"
            f" broker row locked by a dead worker (redelivered within"
            f" {max(held.values(), default=0)} s: django-q2 retry {BROKER_RETRY} s);"
            " the relay does not rescue them"
        )
    elif stranded_at_load_end:
        result.notes.append(
            f"{stranded_at_load_end} job(s) stranded by a worker killed between dequeue and"
            f" claim completed only at django-q2's redelivery, {total_s - load_s:.0f}s later"
        )
    account(result, ids, delayed=held)
    result.notes.append(f"load phase {load_s:.0f}s, total {total_s:.0f}s")
    for cluster in chaos.clusters:
        cluster.stop()
    return result


def broker_held(ids: list[int]) -> dict[int, int]:
    """Unfinished jobs of `ids` that have a django-q2 broker row: {job id: seconds until the
    row's lock expires and it is delivered again}."""
    wanted = set(
        Job.objects.filter(pk__in=ids).exclude(state="succeeded").values_list("id", flat=True)
    )
    held: dict[int, int] = {}
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT payload, EXTRACT(EPOCH FROM lock - now()) FROM {QUEUE_TABLE} WHERE key = %s",
            ["default"],
        )
        for payload, seconds in cursor.fetchall():
            job_id = job_of(payload)
            if job_id in wanted:
                held[job_id] = max(held.get(job_id, 0), int(max(float(seconds), 0)))
    return held


# --- scenario 2 ---------------------------------------------------------------------------------


class Load:
    """Threads sending a steady stream of requests; every response classified by phase."""

    def __init__(self, base: str, riders: list[str], threads: int = 4):
        self.base, self.riders = base, riders
        self.phase = "before"
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.records: list[tuple[str, str, int, bool, str]] = []
        self.threads = [
            threading.Thread(target=self.run, args=(i,), daemon=True) for i in range(threads)
        ]

    def start(self) -> None:
        for thread in self.threads:
            thread.start()

    def finish(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def record(self, what: str, response: requests.Response | None, error: str = "") -> None:
        if response is None:
            entry = (self.phase, what, 0, False, error[:200])
        else:
            is_json = response.headers.get("Content-Type", "").startswith("application/json")
            entry = (self.phase, what, response.status_code, is_json, response.text[:300])
        with self.lock:
            self.records.append(entry)

    def run(self, i: int) -> None:
        session = requests.Session()
        token = self.riders[i % len(self.riders)]
        auth = {"Authorization": f"Token {token}"}
        body = {"pickup": {"lat": 52.52, "lng": 13.405}, "dropoff": {"lat": 52.5, "lng": 13.45}}
        n = 0
        while not self.stop.is_set():
            n += 1
            calls = [
                ("GET /healthz", "get", "/healthz", {}, None),
                ("GET /readyz", "get", "/readyz", {}, None),
                ("GET /api/rides", "get", "/api/rides", auth, None),
            ]
            if n % 4 == 0:  # ~ one ride request per 2 s per rider: under the 30/min throttle
                key = {"Idempotency-Key": f"s2-{i}-{n}"}
                calls.append(("POST /api/rides", "post", "/api/rides", {**auth, **key}, body))
            for what, method, path, headers, json_body in calls:
                try:
                    response = session.request(
                        method, self.base + path, headers=headers, json=json_body, timeout=15
                    )
                except requests.RequestException as error:
                    self.record(what, None, repr(error))
                    continue
                self.record(what, response)
                if what == "POST /api/rides" and response.status_code == 201:
                    ride = response.json()["id"]
                    with contextlib.suppress(requests.RequestException):
                        session.post(
                            f"{self.base}/api/rides/{ride}/cancel",
                            json={},
                            headers=auth,
                            timeout=15,
                        )
            self.stop.wait(0.25)


def database_restart(procs: Processes, base: str, riders: list[str], cfg) -> Result:
    """Scenario 2: web + 1 qcluster + steady requests; PostgreSQL stopped for 10 s."""
    result = Result("2. database restart")
    create_effects_table()
    cluster = procs.qcluster("s2-cluster", "default", 2, {})
    before = enqueue_batch(100_000, cfg.outage_jobs, 0.2)  # still running when the DB stops
    load = Load(base, riders)
    load.start()
    time.sleep(4)
    pending = unfinished(before)
    say(f"  stopping PostgreSQL for {cfg.outage_seconds}s ({pending} jobs still pending)")
    connections.close_all()
    load.phase = "outage"
    devdb("stop")
    time.sleep(cfg.outage_seconds)
    devdb("start")
    load.phase = "after"
    restarted = time.monotonic()
    say("  PostgreSQL started again")
    ready_after = None
    while time.monotonic() - restarted < 30:
        with contextlib.suppress(requests.RequestException):
            if requests.get(base + "/readyz", timeout=5).status_code == 200:
                ready_after = time.monotonic() - restarted
                break
        time.sleep(0.2)
    after = enqueue_batch(200_000, 50, 0)
    time.sleep(cfg.after_seconds)
    load.finish()
    left = drain(before + after, time.monotonic() + cfg.drain_timeout)
    if left and cfg.wait_for_broker_retry:
        redelivery = max(broker_held(before + after).values(), default=0) + 30
        patience = min(redelivery, cfg.deadline - time.monotonic() - 30)
        if patience > 0:
            say(f"  waiting up to {patience:.0f}s for django-q2 to redeliver {left} job(s)")
            left = drain(before + after, time.monotonic() + patience)
    result.load = f"{len(before)}+{len(after)} jobs, {len(load.records)} requests, 4 clients"
    result.faults = f"PostgreSQL stopped {cfg.outage_seconds}s (pg_ctl -m fast)"
    judge_outage(result, load.records)
    result.notes.append(
        f"readyz 200 again {ready_after:.1f}s after restart"
        if ready_after is not None
        else "readyz not 200 within 30 s of the restart"
    )
    held = broker_held(before + after) if left else {}
    if left:
        result.notes.append(
            f"{left} job(s) unfinished after the drain, {len(held)} of them dequeued but never"
            f" claimed (their worker died in the outage), redelivered within"
            f" {max(held.values(), default=0)} s by django-q2's retry ({BROKER_RETRY} s)"
        )
    account(result, before + after, delayed=held)
    if not cluster.alive():
        result.fail("the qcluster process exited during the outage")
    cluster.stop()
    return result


def judge_outage(result: Result, records: list) -> None:
    """Count answers by phase; a 5xx other than a JSON 503, or a non-JSON page, is a failure."""
    by_phase = Counter((phase, status) for phase, _, status, _, _ in records)
    bad = [r for r in records if r[2] >= 500 and not (r[2] == 503 and r[3])]
    pages = [r for r in records if r[2] and not r[3]]
    refused = [r for r in records if r[2] == 0]
    result.errors_5xx = len(bad)
    for phase in ("before", "outage", "after"):
        counts = ", ".join(
            f"{s or 'conn-error'}: {n}" for (p, s), n in sorted(by_phase.items()) if p == phase
        )
        result.notes.append(f"{phase}: {counts}")
    if bad:
        samples = Counter((r[1], r[2], r[4][:120]) for r in bad).most_common(3)
        result.fail(f"{len(bad)} 5xx other than a JSON 503, e.g. {samples}")
    if pages:
        samples = Counter((r[1], r[2], r[4][:120]) for r in pages).most_common(3)
        result.fail(f"{len(pages)} non-JSON answers (a traceback page?), e.g. {samples}")
    if refused:
        result.fail(f"{len(refused)} requests not answered at all, e.g. {refused[0][4]}")
    outage = [r for r in records if r[0] == "outage" and r[1] == "GET /readyz"]
    if outage and not any(r[2] == 503 for r in outage):
        result.fail("readyz never answered 503 during the outage")


def inflight_kills(procs: Processes, cfg) -> Result:
    """Scenario 8: a worker process SIGKILLed while it runs many attempts at once (threads),
    again and again, under a steady load; the relay every ~2 s."""
    result = Result("8. kills with attempts in flight")
    create_effects_table()
    concurrency = cfg.inflight_concurrency
    # The effect job runs in a transaction (it is atomic), so each attempt in flight holds a
    # connection: a pool as large as the concurrency lets all of them run at once.
    env = {
        "JOB_CONCURRENCY_DEFAULT": str(concurrency),
        "JOB_DB_POOL_SIZE": str(concurrency),
        "JOB_DB_CONNECTION_BUDGET": "100",  # the check counts every queue's pools at this size
    }
    cluster = procs.qcluster("s8-cluster", "default", 1, env)
    ids: list[int] = []
    in_flight_at_kills: list[int] = []
    started = time.monotonic()
    next_batch, next_relay, next_kill = started, started + 2, started + 3
    while time.monotonic() < started + cfg.inflight_load_seconds:
        now = time.monotonic()
        if now >= next_batch:  # a steady load: a batch every second
            ids += enqueue_batch(len(ids), cfg.inflight_jobs_per_second, cfg.inflight_job_sleep)
            next_batch = now + 1
        if now >= next_relay:
            safe_relay()
            next_relay = now + 2
        running = Counter(
            _pid(w)
            for w in Job.objects.filter(pk__in=ids, state="running").values_list(
                "worker", flat=True
            )
        )
        pid, flying = running.most_common(1)[0] if running else (0, 0)
        wanted = len(in_flight_at_kills) < cfg.inflight_kills and now >= next_kill
        if wanted and flying >= concurrency // 2:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                in_flight_at_kills.append(flying)
                say(f"  SIGKILLed worker {pid} with {flying} attempts in flight")
            next_kill = now + cfg.inflight_kill_every
        time.sleep(0.1)
    left = drain(ids, time.monotonic() + cfg.drain_timeout)
    result.load = (
        f"{len(ids)} jobs ({cfg.inflight_job_sleep:g} s each), 1 worker process"
        f" running up to {concurrency} at once"
    )
    result.faults = f"{len(in_flight_at_kills)} SIGKILLs with {in_flight_at_kills} in flight"
    result.errors_5xx = "n/a"
    if len(in_flight_at_kills) < cfg.inflight_kills:
        result.fail(f"only {len(in_flight_at_kills)} kill(s) with attempts in flight happened")
    if left:
        result.notes.append(f"{left} job(s) unfinished after the drain")
    account(result, ids)
    cluster.stop()
    return result
