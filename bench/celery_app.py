"""The Celery baseline: a Redis-brokered app with one no-op task, no Django.

Keys live in Redis database 15 under `bimride_bench:`, so the benchmark can clear exactly its
own. Every run of `noop` increments a counter; given a tag it also records (tag, t_ref, start).
"""

import json
import os
import time

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/15")
PREFIX = "bimride_bench:"
DONE_KEY = f"{PREFIX}done"
MARKS_KEY = f"{PREFIX}marks"
QUEUE = "bench"

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    broker_transport_options={"global_keyprefix": PREFIX},
    broker_connection_retry_on_startup=True,
    task_default_queue=QUEUE,
    task_ignore_result=True,
)

_client: redis.Redis | None = None


def client() -> redis.Redis:
    """One connection per process (workers are forked, so it is made lazily)."""
    global _client
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
