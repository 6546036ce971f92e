"""Many attempts in flight per worker process: a thread each, up to the queue's concurrency.

django-q2 hands a worker process one task at a time; `runner.deliver` (the function its broker
rows name) gives the attempt to a thread of this process and returns, blocking only while all
`JOB_CONCURRENCY[queue]` threads are busy. A queue whose concurrency is 1 runs each attempt in
the worker's own thread, held to its timeout by SIGALRM, as before.

Every guarantee of an attempt is the runner's, whichever thread runs it: one claim per attempt,
a lease, redelivery after a crash (a SIGKILL takes every thread's attempt with it; their leases
bring them back). What changes with threads:
- **Timeouts.** SIGALRM reaches the main thread only. A watchdog raises WorkerTimeout in the
  thread of an attempt past its deadline (at the next Python instruction, as SIGALRM would).
  A thread stuck in C code (a sleep, a socket without a timeout) half the lease grace past its
  deadline has the process recycled: it takes no more work, gives its other attempts until
  three quarters of the grace to finish, records the stuck attempts as timed out and exits
  (django-q2 starts another worker). Attempts still running then die with the process; their
  leases bring them back, as after a crash. No attempt outlives its lease: a job never runs
  twice at once.
- **Connections.** Threads take connections from a pool of `JOB_DB_POOL_SIZE` per process
  (Django's psycopg pool) and give them back after each attempt and before each provider call
  (`bimride.db.provider_call`), so a thread waiting on Stripe holds none.
- **Shutdown.** A worker told to stop finishes the attempts in flight before it exits; told
  again (a second Ctrl-C, `bimride.jobs.engine.shutdown`), it records them as failed and exits
  at once.
"""

import ctypes
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

from django.conf import settings
from django.db import connection, connections

from bimride.jobs.engine import broker, metrics, shutdown
from bimride.jobs.engine.broker import WorkerTimeout

logger = logging.getLogger(__name__)

WATCH_INTERVAL = 0.2  # seconds between the watchdog's looks at the deadlines


@dataclass
class Attempt:
    job: object  # the Job
    deadline: float  # time.monotonic()
    interrupted: bool = False


class InFlight:
    """The attempts this worker process runs at once, their threads and their deadlines."""

    def __init__(self, queue: str, size: int, run: Callable, abandon: Callable):
        self.queue, self.size, self.run, self.abandon = queue, size, run, abandon
        self.slots = threading.BoundedSemaphore(size)
        self.threads = ThreadPoolExecutor(max_workers=size, thread_name_prefix=f"job-{queue}")
        self.attempts: dict[int, Attempt] = {}  # by thread ident, while a handler runs
        self.busy = 0  # threads with an attempt, its bookkeeping included
        self.lock = threading.RLock()  # also taken by a stop signal's handler (stop_now)
        self.recycling = False
        threading.Thread(target=self._watch, name="job-watchdog", daemon=True).start()

    def submit(self, job_id: int, broker_row: int | None) -> None:
        """Run an attempt of `job_id` in a thread once one is free."""
        self.slots.acquire()
        with self.lock:
            if not self.recycling:
                self.busy += 1
        if self.recycling:  # this process is on its way out: another one takes the job
            self.slots.release()
            broker.hand_back(broker_row)
            return
        metrics.IN_FLIGHT.labels(self.queue).inc()
        self.threads.submit(self._run, job_id, broker_row)

    def _run(self, job_id: int, broker_row: int | None) -> None:
        try:
            self.run(job_id, broker_row)
        except BaseException:  # the runner itself failed: logged, the lease brings the job back
            if not self.recycling:
                logger.exception("attempt of job %s ended outside the runner", job_id)
        finally:
            connection.close()  # back to the pool: an idle thread holds no connection
            metrics.IN_FLIGHT.labels(self.queue).dec()
            with self.lock:
                self.busy -= 1
                # a timeout raised as the handler ended may have skipped `deadline`'s clean-up
                self.attempts.pop(threading.get_ident(), None)
            self.slots.release()

    @contextmanager
    def deadline(self, job, seconds: int):
        """Hold the calling thread's handler (of `job`) to `seconds`."""
        ident = threading.get_ident()
        attempt = Attempt(job, time.monotonic() + seconds)
        with self.lock:
            self.attempts[ident] = attempt
        try:
            yield
        finally:
            with self.lock:
                self.attempts.pop(ident, None)

    def _watch(self) -> None:
        grace = settings.JOB_LEASE_GRACE.total_seconds()
        while True:
            time.sleep(WATCH_INTERVAL)
            now = time.monotonic()
            with self.lock:
                for ident, attempt in self.attempts.items():
                    if now >= attempt.deadline and not attempt.interrupted:
                        attempt.interrupted = _interrupt(ident)
                    elif now >= attempt.deadline + grace / 2 and not self.recycling:
                        self.recycling = True
                        logger.error(
                            "job %s ignored its timeout: recycling this worker process",
                            attempt.job.pk,
                        )
                stuck = [a for a in self.attempts.values() if now >= a.deadline + grace / 2]
                last_call = any(now >= a.deadline + grace * 3 / 4 for a in stuck)
                done = self.recycling and (self.busy == len(stuck) or last_call)
            if done:
                self._exit(stuck)

    def _exit(self, stuck: list[Attempt]) -> None:
        """Record the stuck attempts as timed out and end this process, before their leases
        run out (nobody may run them again while they still run here)."""
        self._abandon_all(stuck, lambda a: WorkerTimeout(f"ran past its timeout of {a}s"))
        logger.error("worker process exiting: %s attempt(s) stuck past their timeout", len(stuck))
        os._exit(70)

    def stop_now(self, reason: str) -> None:
        """A stop signal: record every attempt in flight as failed (SystemExit: `reason`) and
        end this process at once."""
        self.recycling = True
        with self.lock:
            attempts = list(self.attempts.values())
        self._abandon_all(attempts, lambda _: SystemExit(reason))
        os._exit(0)

    def _abandon_all(self, attempts: list[Attempt], error) -> None:
        for attempt in attempts:
            try:
                self.abandon(attempt.job, error(attempt.job.timeout))
            except Exception:  # the lease brings the job back all the same
                logger.exception("could not record the end of job %s", attempt.job.pk)


def _interrupt(ident: int) -> bool:
    """Raise WorkerTimeout in thread `ident` at its next Python instruction."""
    done = ctypes.pythonapi.PyThreadState_SetAsyncExc(
        ctypes.c_ulong(ident), ctypes.py_object(WorkerTimeout)
    )
    return done == 1


_in_flight: InFlight | None = None
_started = threading.Lock()


def current() -> InFlight | None:
    """This process's attempts in flight, if it runs them in threads."""
    return _in_flight


def for_queue(queue: str, run: Callable, abandon: Callable) -> InFlight:
    """This process's threads for `queue`, started (with their connection pool) on first use:
    `run(job_id, broker_row)` runs an attempt, `abandon(job, error)` records one as failed
    while its thread still runs (the process then ends it)."""
    global _in_flight
    if _in_flight is None:
        with _started:
            if _in_flight is None:
                _use_connection_pool()
                _in_flight = InFlight(queue, settings.JOB_CONCURRENCY[queue], run, abandon)
                shutdown.on_stop(_in_flight.stop_now)
    return _in_flight


def _use_connection_pool() -> None:
    """Give this worker process's threads a pool of connections (Django's psycopg pool)."""
    if settings.JOB_DB_POOL_SIZE < 1:
        return
    connections.close_all()
    config = connections.settings["default"]
    config["CONN_MAX_AGE"] = 0
    config["OPTIONS"]["pool"] = {
        "min_size": 1,
        "max_size": settings.JOB_DB_POOL_SIZE,
        "max_idle": 60,
        "timeout": settings.JOB_DB_POOL_TIMEOUT,
    }
