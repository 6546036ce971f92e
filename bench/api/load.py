"""The open-loop load generator of `bench.api`, run as its own process.

Usage: ``python -m bench.api.load PLAN.json OUT.json``. The plan names the base URL, the rate
(requests/s), the duration, the riders' and drivers' tokens and the client timeout.

Requests go out on a fixed schedule, one every 1/rate seconds, whatever the server does (open
loop): slot `s` is sent at `t0 + s / rate` and its latency is measured from that scheduled time,
not from when it actually left, so a stalled server is charged for the queue it causes
(no coordinated omission). Every 8 consecutive slots carry one step of 8 different rides; each
ride is create, accept, start and complete, with the rider reading the ride once it is accepted
(`GET /api/rides/{id}`) and 3 location pings of its driver in between, spread over about 2 s
whatever the rate.
A ride's step waits for the previous one to answer (it needs the ride's id); that wait counts
in its latency, and a step whose previous one failed is not sent but counted as `skipped`.
Slots that would belong to rides started before t0 carry pings, so the rate is constant from
the first second on.
"""

import asyncio
import json
import sys
import time
import uuid
from dataclasses import dataclass, field

PICKUP = {"lat": 52.52, "lng": 13.405}
DROPOFF = {"lat": 52.50, "lng": 13.45}
COMPLETE_BODY = {"distance_km": "4.20", "duration_min": 14}
# (kind, seconds after the ride's request): step j of ride i goes in slot
# 8 * (i + offset_j) + j, with offset_j that many seconds in rides, so each slot is one request.
STEPS = [
    ("create", 0.0),
    ("ping", 0.24),
    ("accept", 0.48),
    ("read", 0.72),
    ("start", 1.0),
    ("ping", 1.48),
    ("ping", 1.72),
    ("complete", 2.0),
]
EXPECTED = {"create": 201, "accept": 200, "read": 200, "start": 200, "complete": 200, "ping": 202}


FLOW = ["create", "accept", "start", "complete"]


@dataclass
class Ride:
    """Per flow step, a future of its answer (the ride id, or None when it failed)."""

    answered: dict[str, asyncio.Future] = field(default_factory=dict)


def offsets(rate: float) -> list[int]:
    """Per step, its delay after the ride's request in rides (one ride every 8 slots)."""
    return [round(seconds * rate / 8) for _, seconds in STEPS]


def step_of(slot: int, offset: list[int]) -> tuple[int, str]:
    """(ride index, kind) of `slot`; the ride index is negative for filler pings."""
    return slot // 8 - offset[slot % 8], STEPS[slot % 8][0]


class Load:
    def __init__(self, plan: dict, session, client_errors: type[Exception]):
        self.plan = plan
        self.session = session  # an aiohttp.ClientSession
        self.client_errors = client_errors  # aiohttp.ClientError
        self.base = plan["base"].rstrip("/")
        self.riders = plan["riders"]
        self.drivers = plan["drivers"]
        self.rides: dict[int, Ride] = {}
        self.records: list[list] = []  # kind, scheduled offset, latency ms, status, wait ms
        self.skipped: dict[str, int] = {}
        self.errors: dict[str, int] = {}

    def count_error(self, sample: str) -> None:
        """Count an error under its sample (kind, status, body start), for at most 50 samples."""
        if sample in self.errors or len(self.errors) < 50:
            self.errors[sample] = self.errors.get(sample, 0) + 1

    async def request(
        self, kind: str, token: str, path: str, body: dict | None, sched: float, method="POST"
    ):
        headers = {"Authorization": f"Token {token}"}
        if kind == "create":
            headers["Idempotency-Key"] = str(uuid.uuid4())
        sent = time.perf_counter()
        status, data = 0, None
        try:
            call = self.session.request(method, self.base + path, json=body, headers=headers)
            async with call as resp:
                status = resp.status
                raw = await resp.read()
                if kind == "create" and status == 201:
                    data = json.loads(raw)
                elif status >= 400:
                    self.count_error(f"{kind} {status} {raw[:160]!r}")
        except (self.client_errors, TimeoutError) as error:
            self.count_error(f"{kind} {type(error).__name__}")
        done = time.perf_counter()
        self.records.append(
            [
                kind,
                round(sched - self.t0, 4),
                round((done - sched) * 1000, 3),
                status,
                round((sent - sched) * 1000, 3),
            ]
        )
        return status, data

    async def ping(self, driver: str, sched: float, n: int) -> None:
        point = {"lat": 52.52 + (n % 50) * 0.0004, "lng": 13.405 + (n % 37) * 0.0004}
        await self.request("ping", driver, "/api/drivers/me/location", point, sched)

    async def flow_step(self, index: int, kind: str, sched: float) -> None:
        rider = self.riders[index % len(self.riders)]
        driver = self.drivers[index % len(self.drivers)]
        if kind == "create":
            loop = asyncio.get_running_loop()
            ride = self.rides[index] = Ride({k: loop.create_future() for k in FLOW})
            body = {"pickup": PICKUP, "dropoff": DROPOFF}
            status, data = await self.request("create", rider, "/api/rides", body, sched)
            ride.answered["create"].set_result(data["id"] if status == 201 and data else None)
            return
        ride = self.rides[index]
        if kind == "read":  # the rider looks at the ride its driver accepted
            ride_id = await ride.answered["accept"]
            if ride_id is None:
                self.skipped[kind] = self.skipped.get(kind, 0) + 1
            else:
                await self.request(kind, rider, f"/api/rides/{ride_id}", None, sched, "GET")
            return
        ride_id = await ride.answered[FLOW[FLOW.index(kind) - 1]]
        if ride_id is None:
            self.skipped[kind] = self.skipped.get(kind, 0) + 1
            ride.answered[kind].set_result(None)
            return
        body = COMPLETE_BODY if kind == "complete" else None
        status, _ = await self.request(kind, driver, f"/api/rides/{ride_id}/{kind}", body, sched)
        ride.answered[kind].set_result(ride_id if status == EXPECTED[kind] else None)
        if kind == "complete":
            del self.rides[index]

    async def run(self) -> dict:
        rate, slots = self.plan["rate"], int(self.plan["rate"] * self.plan["duration"])
        offset = offsets(rate)
        tasks: set[asyncio.Task] = set()
        self.t0 = time.perf_counter() + 0.2
        late = 0.0
        for slot in range(slots):
            sched = self.t0 + slot / rate
            delay = sched - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            else:
                late = max(late, -delay)
            index, kind = step_of(slot, offset)
            if kind == "ping":
                driver = self.drivers[index % len(self.drivers)]
                coro = self.ping(driver, sched, slot)
            elif index < 0:
                coro = self.ping(self.drivers[slot % len(self.drivers)], sched, slot)
            else:
                coro = self.flow_step(index, kind, sched)
            task = asyncio.create_task(coro)
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        sending_ended = time.perf_counter()
        if tasks:
            await asyncio.wait(tasks, timeout=self.plan["timeout"] + 5)
        return {
            "slots": slots,
            "send_seconds": round(sending_ended - self.t0, 3),
            "max_client_lag_ms": round(late * 1000, 2),
            "skipped": self.skipped,
            "error_samples": self.errors,
            "unfinished": len(tasks),
            "cpu_seconds": time.process_time(),
            "records": self.records,
        }


async def main_async(plan: dict) -> dict:
    import aiohttp  # here: `make test` imports this module's pure helpers without bench's packages

    timeout = aiohttp.ClientTimeout(total=plan["timeout"])
    # gunicorn's sync workers close every connection: no pooling to reuse a closed one.
    connector = aiohttp.TCPConnector(limit=0, force_close=True)
    async with aiohttp.ClientSession(timeout=timeout, connector=connector) as session:
        return await Load(plan, session, aiohttp.ClientError).run()


def main() -> None:
    plan_path, out_path = sys.argv[1], sys.argv[2]
    with open(plan_path) as f:
        plan = json.load(f)
    result = asyncio.run(main_async(plan))
    with open(out_path, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
