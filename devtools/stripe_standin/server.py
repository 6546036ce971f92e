"""A local stand-in for the part of Stripe's API BimRide uses, for tests and offline development.

The real `stripe` SDK reaches it through its API base (`STRIPE_API_BASE=http://127.0.0.1:<port>`).
It listens on loopback only, keeps everything in memory and answers like Stripe: form-encoded
requests, Stripe's JSON objects (`customer`, `payment_method`, `payment_intent`, `refund`) and
error shapes (`{"error": {"type", "code", "message", ...}}`), and `Idempotency-Key` replay: a
repeated key answers the stored first response (with `Idempotent-Replayed: true`) and does
nothing again; the same key with other parameters is an `idempotency_error`.

Endpoints: `POST /v1/customers`, `POST /v1/payment_methods/{pm}/attach` (test tokens such as
`pm_card_visa`; `pm_card_chargeDeclined` declines when charged), `POST /v1/payment_intents`
(with `confirm`, `capture_method=manual|automatic`), `.../{pi}/confirm`, `.../capture`,
`.../cancel`, `POST /v1/refunds`, `POST /v1/accounts` (connected accounts), `POST /v1/transfers`
(to a connected account), `GET /v1/transfers?destination=&transfer_group=`, and `GET` of each
object.

Failure injection, for the next matching requests: `standin.fail_next("decline" | "invalid" |
"429" | "500" | "slow" | "hold", times=1, path="capture", delay=...)`, or standalone
`POST /_standin/fail {"kind": "500", "times": 2, "path": "capture"}`. Injected 429/500 answers
are not stored under the key (a retry runs for real); a decline is, as at Stripe. On transfers,
`insufficient_funds` answers Stripe's `balance_insufficient`. "slow" waits `delay` seconds
before doing the work; "hold" does the work, then holds the answer for `delay` seconds (a
window in which the caller can die after Stripe acted and before it heard).

State: in memory, fresh for each instance; with `state_file=` (standalone: `--state PATH`, as
`make run` does with `.data/stripe-standin.json`) its objects and stored idempotent answers are
loaded at start and written after every change, so they outlive a restart.

Speed, as slow as Stripe on demand: `latency` (seconds added to every API request; standalone
`--latency` or STRIPE_STANDIN_LATENCY) and `rate` (API requests admitted per second over a
sliding one-second window, 0 = unlimited; `--rate` or STRIPE_STANDIN_RATE): a request past the
rate is answered 429 with Stripe's `rate_limit` error and a `Retry-After` header (whole seconds
until the window admits one again), and does nothing. Both are attributes, constructor arguments
and standalone `POST /_standin/latency {"seconds": 0.3}` and `POST /_standin/rate
{"per_second": 100}`. Requests are answered concurrently (a thread each): 50 requests at 0.3 s
take about 0.3 s together, and `peak_in_flight` says how many were in the stand-in at once.

Counters: `standin.captures(pi_id)` (captures executed, replays excluded), `standin.charges`
(payment intents that moved money), `standin.transfers` (by id), `standin.replays`,
`standin.rate_limited` (requests refused by the rate); `GET /_standin/state` for all of it.
`standin.captured` (a threading.Event) is set whenever a capture is executed.

Standalone: `python -m devtools.stripe_standin --port 12111` runs it until Ctrl-C.
"""

import argparse
import hashlib
import json
import math
import os
import secrets
import threading
import time
from collections import Counter, deque
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import urlsplit

from devtools.loopback import LoopbackServer, QuietHandler
from devtools.stripe_standin.objects import StripeObjects, StripeStandinError, parse_form

KINDS = ("decline", "insufficient_funds", "invalid", "429", "500", "slow", "hold")
OBJECTS = ("customers", "payment_methods", "intents", "refunds", "accounts", "transfers")
RATE_LIMITED = "Too many requests hit the API too quickly."  # Stripe's words for `rate_limit`
REUSED_KEY = (
    "Keys for idempotent requests can only be used with the same parameters they were first "
    "used with."
)


@dataclass
class Injected:
    kind: str
    times: int
    path: str  # a substring of the request path; "" matches any
    delay: float


class StripeStandin(StripeObjects, LoopbackServer):
    """The server and its state. Thread-safe: its HTTP threads and the test share it."""

    def __init__(
        self,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        state_file: Path | None = None,
        latency: float = 0.0,
        rate: int = 0,
    ):
        self.latency = latency  # seconds added to every API request
        self.rate = rate  # API requests admitted per second; 0: unlimited
        self.rate_limited = 0  # requests answered 429 for being over the rate
        self.in_flight = self.peak_in_flight = 0  # API requests being answered, now and at most
        self._admitted: deque[float] = deque()  # when the requests of the last second came
        self.customers: dict[str, dict] = {}
        self.payment_methods: dict[str, dict] = {}
        self.intents: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.accounts: dict[str, dict] = {}
        self.transfers: dict[str, dict] = {}
        self.requests: Counter = Counter()  # "POST /v1/payment_intents" -> count (replays too)
        self.idempotency_keys: Counter = Counter()  # key -> requests that carried it
        self.replays = 0
        self.captured = threading.Event()
        self._captures: Counter = Counter()  # pi id -> captures executed
        self._stored: dict[str, tuple[str, int, dict]] = {}  # key -> (fingerprint, status, body)
        self._injected: list[Injected] = []
        self._lock = threading.RLock()
        self._key_locks: dict[str, threading.Lock] = {}
        self.state_file = Path(state_file) if state_file else None
        if self.state_file is not None and self.state_file.exists():
            self._load()
        super().__init__(_handler_for(self), host, port)

    # --- lifecycle ------------------------------------------------------------------------------
    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- test controls --------------------------------------------------------------------------
    def fail_next(
        self, kind: str, *, times: int = 1, path: str = "", delay: float = 3.0
    ) -> "StripeStandin":
        """Answer the next `times` requests whose path contains `path` with failure `kind`."""
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}")
        with self._lock:
            self._injected.append(Injected(kind, times, path, delay))
        return self

    def captures(self, intent_id: str | None = None) -> int:
        """Captures executed (replays excluded), of one payment intent or of all."""
        with self._lock:
            return self._captures[intent_id] if intent_id else sum(self._captures.values())

    @property
    def charges(self) -> int:
        """Payment intents that moved money (captured or charged), replays excluded."""
        with self._lock:
            return sum(1 for pi in self.intents.values() if pi["status"] == "succeeded")

    def intents_of(self, **metadata) -> list[dict]:
        with self._lock:
            return [
                pi
                for pi in self.intents.values()
                if all(pi["metadata"].get(k) == str(v) for k, v in metadata.items())
            ]

    def state(self) -> dict:
        with self._lock:
            return {
                "customers": len(self.customers),
                "intents": list(self.intents.values()),
                "refunds": list(self.refunds.values()),
                "transfers": list(self.transfers.values()),
                "captures": dict(self._captures),
                "replays": self.replays,
                "requests": dict(self.requests),
                "latency": self.latency,
                "rate": self.rate,
                "rate_limited": self.rate_limited,
                "peak_in_flight": self.peak_in_flight,
            }

    # --- persistence ----------------------------------------------------------------------------
    def _load(self) -> None:
        data = json.loads(self.state_file.read_text())
        for name in OBJECTS:
            getattr(self, name).update(data.get(name, {}))
        self._captures.update(data.get("captures", {}))
        self._stored = {key: tuple(stored) for key, stored in data.get("stored", {}).items()}

    def _save(self) -> None:
        """Write the state file (atomically: a crash leaves the previous one)."""
        if self.state_file is None:
            return
        with self._lock:  # one writer at a time, so the newest state is the one kept
            data = {name: getattr(self, name) for name in OBJECTS}
            data |= {"captures": self._captures, "stored": self._stored}
            self.state_file.parent.mkdir(parents=True, exist_ok=True)
            partial = self.state_file.with_name(f"{self.state_file.name}.partial")
            partial.write_text(json.dumps(data))
            os.replace(partial, self.state_file)

    # --- answering ------------------------------------------------------------------------------
    def handle(self, method: str, path: str, headers, body: str) -> tuple[int, dict, dict]:
        """(status, extra headers, JSON body) for one API request, `latency` seconds late."""
        path = urlsplit(path).path.rstrip("/")
        with self._lock:
            self.requests[f"{method} {path}"] += 1
            self.in_flight += 1
            self.peak_in_flight = max(self.peak_in_flight, self.in_flight)
        try:
            wait = self._admit()
            time.sleep(self.latency)
            if wait:
                return self._rate_limited(wait)
            return self._handle(method, path, headers, body)
        finally:
            with self._lock:
                self.in_flight -= 1

    def _admit(self) -> float:
        """0 when the request is within the rate (and counted in its window), else the seconds
        until the window admits one again."""
        rate = self.rate
        if rate <= 0:
            return 0.0
        now = time.monotonic()
        with self._lock:
            while self._admitted and self._admitted[0] <= now - 1.0:
                self._admitted.popleft()
            if len(self._admitted) < rate:
                self._admitted.append(now)
                return 0.0
            self.rate_limited += 1
            return max(self._admitted[0] + 1.0 - now, 0.001)

    @staticmethod
    def _rate_limited(wait: float) -> tuple[int, dict, dict]:
        body = _error_body("invalid_request_error", RATE_LIMITED, code="rate_limit")
        return 429, {"Retry-After": str(math.ceil(wait))}, body

    def _handle(self, method: str, path: str, headers, body: str) -> tuple[int, dict, dict]:
        authorization = headers.get("Authorization", "")
        if not authorization.startswith("Bearer sk_") or len(authorization) < 12:
            return 401, {}, _error_body("invalid_request_error", "Invalid API Key provided.")
        injected = self._take_injection(path)
        hold = 0.0
        if injected is not None and injected.kind in ("slow", "hold"):
            if injected.kind == "slow":
                time.sleep(injected.delay)
            else:
                hold = injected.delay
            injected = None
        answer = self._answer(method, path, headers, body, injected)
        if method == "POST" and answer[0] < 500:
            self._save()
        time.sleep(hold)  # the work is done (and stored under its key); the caller waits
        return answer

    def _answer(self, method: str, path: str, headers, body: str, injected):
        if injected is not None and injected.kind in ("429", "500"):
            return self._injected_failure(injected.kind)
        params = parse_form(body)
        key = headers.get("Idempotency-Key") if method == "POST" else None
        if not key:
            return self._execute(method, path, params, injected)
        with self._lock:
            self.idempotency_keys[key] += 1
            key_lock = self._key_locks.setdefault(key, threading.Lock())
        with key_lock:  # a racing duplicate waits for the first and replays it
            fingerprint = hashlib.sha256(f"{method} {path}?{body}".encode()).hexdigest()
            stored = self._stored.get(key)
            if stored is not None:
                if stored[0] != fingerprint:
                    return 400, {}, _error_body("idempotency_error", REUSED_KEY)
                with self._lock:
                    self.replays += 1
                return stored[1], {"Idempotent-Replayed": "true"}, stored[2]
            status, extra, data = self._execute(method, path, params, injected)
            if status < 500 and status != 429:
                with self._lock:
                    self._stored[key] = (fingerprint, status, data)
            return status, {**extra, "Idempotency-Key": key}, data

    def _take_injection(self, path: str) -> Injected | None:
        with self._lock:
            for injected in self._injected:
                if injected.path in path:
                    injected.times -= 1
                    if injected.times <= 0:
                        self._injected.remove(injected)
                    return injected
        return None

    @staticmethod
    def _injected_failure(kind: str) -> tuple[int, dict, dict]:
        if kind == "429":
            return (
                429,
                {},
                _error_body("invalid_request_error", RATE_LIMITED, code="rate_limit"),
            )
        return 500, {}, _error_body("api_error", "An unknown error occurred.")

    def _execute(self, method, path, params, injected) -> tuple[int, dict, dict]:
        parts = path.strip("/").split("/")
        try:
            with self._lock:
                return 200, {}, self._route(method, parts, params, injected)
        except StripeStandinError as error:
            return error.status, {}, {"error": error.error}

    # --- the standalone control API -------------------------------------------------------------
    def control(self, method: str, path: str, body: bytes) -> tuple[int, dict]:
        if path == "/_standin/state":
            return 200, self.state()
        if path in ("/_standin/latency", "/_standin/rate") and method == "POST":
            data = json.loads(body or b"{}")
            try:
                if path == "/_standin/latency":
                    self.latency = _at_least_zero(float(data["seconds"]))
                else:
                    self.rate = int(_at_least_zero(float(data["per_second"])))
            except (KeyError, TypeError, ValueError) as error:
                field = "seconds" if path == "/_standin/latency" else "per_second"
                return 400, {"error": f"{field}: a number >= 0 ({error})"}
            return 200, {"latency": self.latency, "rate": self.rate}
        if path == "/_standin/fail" and method == "POST":
            data = json.loads(body or b"{}")
            try:
                self.fail_next(
                    data.get("kind", ""),
                    times=int(data.get("times", 1)),
                    path=data.get("path", ""),
                    delay=float(data.get("delay", 3.0)),
                )
            except ValueError as error:
                return 400, {"error": str(error)}
            return 200, {"ok": True}
        return 404, {"error": "not found"}


def _at_least_zero(value: float) -> float:
    if not value >= 0:  # NaN too
        raise ValueError("below zero")
    return value


def _error_body(kind: str, message: str, code: str | None = None) -> dict:
    error = {"type": kind, "message": message}
    if code:
        error["code"] = code
    return {"error": error}


def _handler_for(standin: StripeStandin) -> type[BaseHTTPRequestHandler]:
    class Handler(QuietHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body in separate writes: no 40 ms stalls

        def _serve(self, method: str) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            if self.path.startswith("/_standin/"):
                status, data = standin.control(method, self.path, body)
                headers: dict = {}
            else:
                status, headers, data = standin.handle(
                    method, self.path, self.headers, body.decode() or urlsplit(self.path).query
                )
            payload = json.dumps(data).encode()
            try:
                self.send_response(status)
                for name, value in {**headers, "Request-Id": f"req_{secrets.token_hex(7)}"}.items():
                    self.send_header(name, value)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (a timeout): Stripe still did the work

        def do_POST(self) -> None:  # noqa: N802 - http.server's naming
            self._serve("POST")

        def do_GET(self) -> None:  # noqa: N802
            self._serve("GET")

        def do_DELETE(self) -> None:  # noqa: N802
            self._serve("DELETE")

    return Handler


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--state", type=Path, help="keep the state in this JSON file")
    parser.add_argument(
        "--latency",
        type=float,
        default=float(os.environ.get("STRIPE_STANDIN_LATENCY") or 0),
        help="seconds added to every API request (STRIPE_STANDIN_LATENCY; default 0)",
    )
    parser.add_argument(
        "--rate",
        type=int,
        default=int(os.environ.get("STRIPE_STANDIN_RATE") or 0),
        help="API requests per second, 429 above (STRIPE_STANDIN_RATE; default 0: unlimited)",
    )
    args = parser.parse_args()
    standin = StripeStandin(
        port=args.port, state_file=args.state, latency=args.latency, rate=args.rate
    )
    pace = f"latency {args.latency:g}s, rate {args.rate or 'unlimited'}/s"
    standin.serve_until_interrupted(
        f"Stripe stand-in at {standin.api_base} (STRIPE_API_BASE; {pace}); Ctrl-C stops it"
    )
