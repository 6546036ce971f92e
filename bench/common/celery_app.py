"""The Celery baseline: a Redis-brokered app with a no-op task and a Stripe call, no Django.

Keys live in Redis database 15 under `bimride_bench:`, so the benchmark can clear exactly its
own. Every run of `noop` increments a counter; given a tag it also records (tag, t_ref, start).
`stripe_wait` (`make bench-providers`) makes `bench.common.provider_call`'s Stripe request, then
counts itself and records its start and end.
"""

import json
import os
import threading
import time

import redis
from celery import Celery

from bench.common.provider_call import PROVIDER_JOB, intent_retrieve

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PREFIX = "bimride_bench:"
DONE_KEY = f"{PREFIX}done"
MARKS_KEY = f"{PREFIX}marks"
SPANS_KEY = f"{PREFIX}spans"
QUEUE = "bench"

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
)

_client: redis.Redis | None = None
_client_lock = threading.Lock()


def client() -> redis.Redis:
    """One client per process (workers are forked, so it is made lazily; once, when a threads
    pool's first tasks ask together)."""
    global _client
    with _client_lock:
        if _client is None:
            _client = redis.Redis.from_url(REDIS_URL)
        return _client


@app.task(name="bench.noop")
def noop(tag: str | None = None, t_ref: float | None = None) -> None:
    started = time.time()
    pipe = client().pipeline(transaction=False)
    if tag is not None:
        pipe.rpush(MARKS_KEY, json.dumps([tag, t_ref, started]))
    pipe.incr(DONE_KEY)
    pipe.execute()


def clear() -> None:
    """Delete every key of the benchmark (queue, unacked sets, counters, marks)."""
    keys = list(client().scan_iter(match=f"{PREFIX}*", count=1000))
    if keys:
        client().delete(*keys)


@app.task(name=PROVIDER_JOB)
def stripe_wait(intent_id: str) -> None:
    """`make bench-providers`' job: the same Stripe call as ours, then (start, end) recorded."""
    started = time.time()
    intent_retrieve(intent_id)
    pipe = client().pipeline(transaction=False)
    pipe.rpush(SPANS_KEY, json.dumps([started, time.time()]))
    pipe.incr(DONE_KEY)
    pipe.execute()


def spans() -> list[tuple[float, float]]:
    """(start, end) of every `stripe_wait` run so far."""
    return [tuple(json.loads(s)) for s in client().lrange(SPANS_KEY, 0, -1)]
