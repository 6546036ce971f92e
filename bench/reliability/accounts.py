"""The accounting of scenario 7 (bench/reliability/hosts.py), at the providers and in the ledger.

- Stripe: captures per payment intent (never more than one), every completed ride captured.
- The email provider's stand-in: receipts per ride, read from the receipt number in the
  subject: exactly one per completed ride, none for a ride that did not complete.
- The API: no 5xx (there is no database or pooler outage in this scenario); requests cut by the
  killed host are counted apart, each sent again to a live host.
- The ledger: every job finished, none dead-lettered, none claimed or succeeded twice; each
  effect job's row exactly once; the jobs the dead host was running or had taken from the
  broker, and the deferred jobs due after its death, run by the others.
- Cron: every occurrence since the start has one ScheduleRun, whose job succeeded once, and the
  every-minute schedules have no gap.
"""

import re
from collections import Counter
from datetime import timedelta
from itertools import pairwise

from django.db.models import Count
from django.utils import timezone

from bench.reliability.jobtypes import effect_counts
from bimride.jobs.models import DeadLetter, Job, JobEvent, ScheduleRun
from rides.models import Ride

FINISHED = ("succeeded", "dead", "cancelled")
RECEIPT = re.compile(r"BR-\d{8}-(\d+)")
EVERY_MINUTE = ("jobs.relay_outbox", "jobs.check_alerts", "rides.fold_location_pings")


def host_of(worker: str) -> str:
    return worker.rsplit(":", 1)[0] if worker else "?"


class Accounting:
    """Fills the scenario's Result: jobs, lost, duplicated, 5xx, status and notes."""

    def __init__(self, result, first_job: int, kill: dict, stripe, email, rides: list[int]):
        self.result, self.kill = result, kill
        self.stripe, self.email = stripe, email
        # Earlier scenarios' rides may still have deferred jobs (a cancellation fee, retries)
        # that come due meanwhile and meet this scenario's stand-ins: not this scenario's jobs.
        jobs = Job.objects.filter(pk__gt=first_job)
        theirs = jobs.filter(subject__startswith="ride:").exclude(
            subject__in=[f"ride:{ride}" for ride in rides]
        )
        self.theirs = theirs.count()
        self.jobs = jobs.exclude(pk__in=theirs.values("pk"))
        self.lost = 0
        self.duplicated = 0

    def _close(self) -> None:
        self.result.lost, self.result.duplicated = self.lost, self.duplicated

    def providers(self, load) -> None:
        result = self.result
        fives = [r for r in load.records if r[2] >= 500]
        unanswered = [r for r in load.records if r[2] == 0]
        result.errors_5xx = len(fives)
        served = Counter(r[0] for r in load.records if r[2])
        result.notes.append(f"requests answered per host {dict(sorted(served.items()))}")
        if fives:
            result.fail(f"{len(fives)} 5xx answers, e.g. {Counter(fives).most_common(3)}")
        if unanswered:
            result.fail(f"{len(unanswered)} requests to live hosts unanswered: {unanswered[:3]}")
        state = self.stripe.state()
        ride_of = {
            pi["id"]: int(pi["metadata"]["ride_id"])
            for pi in state["intents"]
            if pi.get("metadata", {}).get("ride_id")
        }
        captures = state["captures"]
        twice = {pi: n for pi, n in captures.items() if n > 1}
        captured = {ride_of.get(pi) for pi, n in captures.items() if n >= 1}
        mine = set(load.rides)  # earlier scenarios' rides may still get theirs meanwhile
        receipts = Counter(
            ride
            for message in self.email.received()
            if (m := RECEIPT.search(message.subject)) and (ride := int(m.group(1))) in mine
        )
        rides = dict(Ride.objects.filter(pk__in=load.rides).values_list("pk", "status"))
        completed = {pk for pk, status in rides.items() if status == "completed"}
        uncaptured = sorted(completed - captured)
        unreceipted = sorted(r for r in completed if receipts[r] == 0)
        extra = {r: n for r, n in receipts.items() if n > 1 or r not in completed}
        self.lost += len(uncaptured) + len(unreceipted)
        self.duplicated += sum(n - 1 for n in twice.values()) + sum(
            n - (r in completed) for r, n in extra.items()
        )
        result.notes.append(
            f"rides: {len(load.rides)} requested, {len(completed)} completed"
            f" ({len(load.completed)} confirmed by the API), statuses"
            f" {dict(Counter(rides.values()))}; Stripe: {len(captures)} intents captured,"
            f" {len(twice)} twice; email: {sum(receipts.values())} receipts for"
            f" {len(receipts)} rides;"
            f" {len(load.cut)} requests cut by the kill, each sent again to a live host"
        )
        if twice:
            result.fail(f"payment intents captured more than once: {twice}")
        if uncaptured:
            result.fail(f"{len(uncaptured)} completed rides not captured, e.g. {uncaptured[:5]}")
        if unreceipted:
            result.fail(f"{len(unreceipted)} completed rides without a receipt: {unreceipted[:5]}")
        if extra:
            result.fail(f"receipts more than once or for rides not completed: {extra}")
        if load.broken:
            result.fail(f"{len(load.broken)} rides stopped mid-flow, e.g. {load.broken[:3]}")
        self._close()

    def ledger(self, effect_ids: list[int], errors: list[str]) -> None:
        result, jobs, kill = self.result, self.jobs, self.kill
        states = Counter(jobs.values_list("state", flat=True))
        unfinished = list(jobs.exclude(state__in=FINISHED).values_list("pk", "name", "state"))
        dead = DeadLetter.objects.filter(job__in=jobs).count()
        counts = effect_counts(effect_ids)
        missing = [i for i in effect_ids if not counts.get(i)]
        doubled = [i for i in effect_ids if counts.get(i, 0) > 1]
        events = JobEvent.objects.filter(job__in=jobs)
        claims = dict(events.filter(state="running").values_list("job_id").annotate(n=Count("id")))
        successes = events.filter(state="succeeded").values_list("job_id").annotate(n=Count("id"))
        twice = [job for job, n in successes if n > 1]
        attempts = dict(jobs.values_list("pk", "attempts"))
        overclaimed = [pk for pk, n in claims.items() if n > attempts.get(pk, 0)]
        result.jobs = len(attempts)
        self.lost += len(unfinished) + len(missing)
        self.duplicated += len(doubled) + len(twice) + len(overclaimed)
        result.notes.append(
            "jobs "
            + ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
            + f"; dead letters {dead}; {len(effect_ids)} effect jobs, {len(missing)} without"
            f" and {len(doubled)} with a doubled effect; {self.theirs} jobs of earlier"
            " scenarios' rides (deferred, due meanwhile) left out"
        )
        for why, bad in (
            ("unfinished", unfinished),
            ("effect jobs without effect", missing),
            ("effect jobs with a doubled effect", doubled),
            ("jobs that succeeded twice", twice),
            ("jobs claimed more often than attempted", overclaimed),
            ("enqueue errors", errors),
        ):
            if bad:
                result.fail(f"{len(bad)} {why}, e.g. {bad[:5]}")
        if dead:
            result.fail(f"{dead} dead letter(s)")
        self._rescued(kill)
        self._close()

    def _rescued(self, kill: dict) -> None:
        """What the dead host held, finished by the others, and how soon."""
        result, at = self.result, kill["at"]
        held = kill["running"] | kill["taken"]
        rows = list(
            Job.objects.filter(pk__in=held).values_list("pk", "state", "worker", "finished_at")
        )
        done = [r for r in rows if r[1] == "succeeded" and not r[2].startswith("host3:")]
        last = max((r[3] for r in done), default=at)
        deferred = self.jobs.filter(created_at__lt=at, run_at__gt=at + timedelta(seconds=1))
        deferred_states = Counter(deferred.values_list("state", flat=True))
        relays = self.jobs.filter(name="jobs.relay_outbox", started_at__gt=at, state="succeeded")
        rescued = Counter()
        for counts in relays.values_list("result", flat=True):
            rescued.update({k: v for k, v in (counts or {}).items() if isinstance(v, int)})
        result.notes.append(
            f"host3 held {len(kill['running'])} running job(s) and {len(kill['taken'])} taken"
            f" from the broker: {len(done)} of them finished by host1/host2, the last"
            f" {(last - at).total_seconds():.0f}s after the kill (lease or"
            f" JOB_STALL_AFTER_SECONDS, then the next minute's relay); the relays after the"
            f" kill re-dispatched {rescued['orphaned']} orphaned and released"
            f" {rescued['stalled']} stalled job(s); {deferred.count()} deferred job(s) enqueued"
            f" before the kill and due after it: {dict(deferred_states)}"
        )
        if len(done) != len(held):
            result.fail(f"jobs host3 held not finished by the others: {rows}")
        if deferred.exclude(state="succeeded").exists():
            result.fail(f"deferred jobs due after the kill not run: {dict(deferred_states)}")

    def cron(self, since) -> None:
        result = self.result
        runs = ScheduleRun.objects.filter(intended_at__gte=since - timedelta(minutes=1))
        doubles = runs.values("schedule", "intended_at").annotate(n=Count("id")).filter(n__gt=1)
        per = Counter(runs.values_list("schedule", flat=True))
        settled = runs.filter(intended_at__lt=timezone.now() - timedelta(seconds=15))
        bad = list(settled.exclude(job__state="succeeded").values_list("schedule", "intended_at"))
        gaps = []
        for name in EVERY_MINUTE:
            minutes = sorted(runs.filter(schedule=name).values_list("intended_at", flat=True))
            gaps += [(name, a) for a, b in pairwise(minutes) if b - a > timedelta(minutes=1)]
        # a scheduled job is enqueued with its occurrence's row: one without a row is a second run
        extra = list(
            self.jobs.filter(name__in=per, schedule_run__isnull=True).values_list("pk", "name")
        )
        ran_by = Counter(host_of(w) for w in runs.values_list("job__worker", flat=True))
        self.duplicated += doubles.count() + len(extra)
        result.notes.append(
            f"cron: {runs.count()} occurrences ({dict(per)}), each one ScheduleRun and one job"
            f" that succeeded once, run by {dict(ran_by)}"
        )
        if gaps:  # django-q2 computes the next run from now (catch_up=False): not run twice
            result.notes.append(
                f"cron: {len(gaps)} every-minute occurrence(s) skipped, the scheduler having"
                f" fired the one before over a minute late: after {gaps[:3]}"
            )
        for why, what in (
            ("occurrences with two ScheduleRuns", list(doubles)),
            ("occurrences whose job did not succeed", bad),
            ("scheduled jobs without their own occurrence", extra),
        ):
            if what:
                result.fail(f"cron: {why}: {what}")
        self._close()

    def hosts(self, hosts: list, victim) -> None:
        result, at = self.result, self.kill["at"]
        events = JobEvent.objects.filter(job__in=self.jobs, state="running")
        before = Counter(
            host_of(w) for w in events.filter(at__lt=at).values_list("worker", flat=True)
        )
        after = Counter(
            host_of(w) for w in events.filter(at__gte=at).values_list("worker", flat=True)
        )
        metrics = {h.label: sum(1 for _ in h.metrics.glob("*.db")) for h in hosts}
        result.notes.append(
            f"job starts by host before the kill {dict(sorted(before.items()))}, after"
            f" {dict(sorted(after.items()))}; metrics files per host {metrics}"
        )
        if after.get(victim.label):
            result.fail(f"{victim.label} started jobs after it was killed")
        if any(not before.get(h.label) for h in hosts):
            result.fail(f"a host ran no job before the kill: {dict(before)}")
