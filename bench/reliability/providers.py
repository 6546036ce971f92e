"""Scenario 6 of `bench.reliability`: the email (Postmark, the default provider) and Stripe
stand-ins fail with 503 for a while under load. The API keeps answering; afterwards every
payment is captured once, every receipt is sent once, and nothing retryable was dead-lettered."""

import threading
import time
from collections import Counter

import requests
from django.db.models import Max, Q
from django.utils import timezone

from bench.reliability.faults import Result
from bench.reliability.http import RIDE_BODY, make_actor
from bench.reliability.procs import Processes, say
from bimride.jobs.models import DeadLetter, Job
from devtools.postmark_standin import PostmarkStandin
from devtools.stripe_standin import StripeStandin

COMPLETE_BODY = {"distance_km": "4.20", "duration_min": 14}
FINISHED = ("succeeded", "dead", "cancelled")


class DownableStripe(StripeStandin):
    """The Stripe stand-in, answering 503 `api_error` to every API call while `down`."""

    down = False

    def handle(self, method, path, headers, body):
        if self.down:
            error = {"type": "api_error", "message": "Service unavailable (reliability bench)."}
            return 503, {}, {"error": error}
        return super().handle(method, path, headers, body)


def ride_lifecycle(base: str, rider, driver, out: list, lock: threading.Lock) -> None:
    """Request, accept, start and complete one ride through the API; record every answer."""
    s = requests.Session()

    def call(actor, method: str, path: str, body=None) -> requests.Response | None:
        try:
            response = s.request(method, base + path, json=body, headers=actor.headers, timeout=30)
        except requests.RequestException as error:
            with lock:
                out.append((path, 0, repr(error)[:120]))
            return None
        with lock:
            out.append((path, response.status_code, response.text[:120]))
        return response

    created = call(rider, "POST", "/api/rides", RIDE_BODY)
    if created is None or created.status_code != 201:
        return
    ride = created.json()["id"]
    time.sleep(1)
    for path, body in (("accept", None), ("start", None), ("complete", COMPLETE_BODY)):
        answer = call(driver, "POST", f"/api/rides/{ride}/{path}", body)
        if answer is None or answer.status_code != 200:
            return
        time.sleep(0.5)
    call(rider, "GET", f"/api/rides/{ride}")


def provider_outage(procs: Processes, cfg) -> Result:
    result = Result("6. provider outage")
    stripe = DownableStripe().start()
    email = PostmarkStandin().start()
    env = {
        "STRIPE_API_BASE": stripe.api_base,
        **email.settings(),  # the real anymail Postmark backend, talking to the stand-in
        "JOB_RETRY_SCALE": str(cfg.provider_retry_scale),
    }
    try:
        for queue in ("critical", "default", "bulk"):
            procs.qcluster(f"s6-{queue}", queue, 2, env)
        _, base = procs.web("web-s6", env)
        riders = [make_actor("rider", f"s6r{i}") for i in range(cfg.provider_rides)]
        drivers = [make_actor("driver", f"s6d{i}") for i in range(cfg.provider_rides)]
        first_job = Job.objects.order_by("-id").values_list("id", flat=True).first() or 0
        answers: list = []
        lock = threading.Lock()
        say(f"  stand-ins answer 503 for {cfg.provider_outage_seconds}s; {len(riders)} rides")
        stripe.down, email.mode = True, "503"
        outage_started = time.monotonic()
        threads = []
        spacing = cfg.provider_outage_seconds * 0.7 / len(riders)
        for rider, driver in zip(riders, drivers, strict=True):
            thread = threading.Thread(
                target=ride_lifecycle, args=(base, rider, driver, answers, lock), daemon=True
            )
            thread.start()
            threads.append(thread)
            time.sleep(spacing)
        for thread in threads:
            thread.join(timeout=120)
        time.sleep(max(0.0, cfg.provider_outage_seconds - (time.monotonic() - outage_started)))
        stripe.down, email.mode = False, "ok"
        say("  stand-ins answer again")
        refused = dict(email.refused)
        jobs = Job.objects.filter(pk__gt=first_job)
        drain(jobs, cfg)
        account_providers(result, jobs, answers, riders, stripe, email, refused)
    finally:
        stripe.stop()
        email.stop()
    result.load = f"{len(riders)} rides requested, accepted, started, completed via the API"
    result.faults = f"Stripe and Postmark stand-ins 503 for {cfg.provider_outage_seconds}s"
    return result


def drain(jobs, cfg) -> None:
    """Wait until no job is due: `provider_drain_timeout`, and longer while retries are still
    scheduled (the payments policy backs off for minutes), within the run's time budget."""
    budget_end = cfg.deadline - 100
    deadline = min(time.monotonic() + cfg.provider_drain_timeout, budget_end)
    while due(jobs).exists():
        if time.monotonic() >= deadline:
            latest = due(jobs).aggregate(at=Max("next_attempt_at"))["at"]
            wait = max((latest - timezone.now()).total_seconds(), 0) + 30 if latest else 30
            if time.monotonic() + wait > budget_end:
                return
            say(f"  retries still scheduled: waiting {wait:.0f}s more")
            deadline = time.monotonic() + wait
        time.sleep(2)


def due(jobs):
    """Jobs not finished, retries waiting for their next attempt included; jobs deferred from
    the start (queued for later, such as a cancellation fee) are not due yet."""
    deferred = Q(state="queued", attempts=0, run_at__gt=timezone.now())
    return jobs.exclude(state__in=FINISHED).exclude(deferred)


def account_providers(result, jobs, answers, riders, stripe, email, refused) -> None:
    states = Counter(jobs.values_list("state", flat=True))
    unfinished = due(jobs)
    deferred = jobs.exclude(state__in=FINISHED).count() - unfinished.count()
    dead = DeadLetter.objects.filter(job__in=jobs)
    captures = stripe.state()["captures"]
    receipts = email.receipts()  # per rider: each rider completed one ride
    completed = sum(1 for path, code, _ in answers if path.endswith("/complete") and code == 200)
    fives = [a for a in answers if a[1] >= 500 or a[1] == 0]
    result.jobs = jobs.count()
    result.errors_5xx = len(fives)
    backing_off = unfinished.filter(state="retrying")
    # a job waiting its turn behind a retrying job of its concurrency key (a ride's capture
    # behind its authorisation) is backing off with it
    keys = backing_off.exclude(concurrency_key="").values_list("concurrency_key", flat=True)
    behind = unfinished.filter(state="queued", concurrency_key__in=list(keys))
    retrying = backing_off.count() + behind.count()  # backing off, not lost
    stuck = unfinished.count() - retrying
    result.lost = stuck if not retrying else f"{stuck} ({retrying} still retrying)"
    result.duplicated = sum(n - 1 for n in captures.values() if n > 1) + sum(
        n - 1 for n in receipts.values() if n > 1
    )
    result.notes.append(
        "jobs "
        + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
        + f"; {completed} rides completed, {len(captures)} captured at Stripe,"
        f" {sum(receipts.values())} receipts to {len(receipts)} riders;"
        f" Postmark refused {refused}; {deferred} deferred job(s) not due yet"
    )
    if fives:
        result.fail(f"{len(fives)} API answers 5xx or none, e.g. {fives[:3]}")
    if stuck:
        sample = list(unfinished.values_list("name", "state", "attempts")[:5])
        result.fail(f"{stuck} job(s) unfinished (not retrying) after the drain, e.g. {sample}")
    if retrying:
        sample = list(unfinished.values_list("name", "attempts", "next_attempt_at")[:3])
        result.notes.append(f"{retrying} job(s) still backing off after the drain: {sample}")
    if dead.exists():
        sample = list(dead.values_list("name", "error_class", "attempts")[:5])
        result.fail(f"{dead.count()} dead letter(s), e.g. {sample}")
    if completed != len(captures) and not retrying:
        result.fail(f"{completed} completed rides but {len(captures)} captured payments")
    if retrying and result.status == "pass":
        result.status = "delayed"
    if len(receipts) != completed and not retrying:  # a receipt follows its ride's capture
        result.fail(f"{completed} completed rides but receipts to {len(receipts)} riders")
    if result.duplicated:
        result.fail(f"{result.duplicated} duplicated capture(s) or receipt(s)")
    if completed < len(riders):
        result.fail(f"only {completed} of {len(riders)} rides completed through the API")
