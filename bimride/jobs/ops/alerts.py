"""The alert check: dead letters growing too fast, or a queue lagging past its SLA.

An alert is an incident: raised once (logged at ERROR to `bimride.alerts`, which emails ADMINS),
kept open while its condition lasts, and cleared (logged) when the condition clears.
"""

import logging

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from bimride.jobs.models import Alert, DeadLetter
from bimride.jobs.ops.selectors import queue_lags

logger = logging.getLogger("bimride.alerts")


def conditions() -> dict[str, str]:
    """The alert conditions that hold now: {key: message}."""
    now = timezone.now()
    active = {}
    window = settings.ALERT_DEAD_LETTER_WINDOW
    recent = DeadLetter.objects.filter(created_at__gte=now - window).count()
    if recent > settings.ALERT_DEAD_LETTERS:
        active["dead_letters"] = (
            f"{recent} jobs were dead-lettered in the last {int(window.total_seconds() // 60)}"
            f" minutes (threshold {settings.ALERT_DEAD_LETTERS})."
        )
    for queue, lag in queue_lags().items():
        sla = settings.QUEUE_LAG_SLA.get(queue)
        if sla is not None and lag > sla:
            active[f"lag:{queue}"] = f"Queue {queue} lags {lag:.0f} s behind (SLA {sla:.0f} s)."
    return active


@transaction.atomic
def check() -> dict[str, list[str]]:
    """Open alerts for new conditions, clear the ones whose condition is gone."""
    now = timezone.now()
    active = conditions()
    open_alerts = {a.key: a for a in Alert.objects.select_for_update().filter(cleared_at=None)}
    report = {"raised": [], "ongoing": [], "cleared": []}
    for key, message in active.items():
        if key in open_alerts:
            Alert.objects.filter(pk=open_alerts[key].pk).update(last_seen_at=now, message=message)
            report["ongoing"].append(key)
        else:
            Alert.objects.create(key=key, message=message, opened_at=now, last_seen_at=now)
            logger.error("ALERT %s: %s", key, message)
            report["raised"].append(key)
    for key, alert in open_alerts.items():
        if key not in active:
            Alert.objects.filter(pk=alert.pk).update(cleared_at=now)
            logger.warning("alert %s cleared after %s", key, now - alert.opened_at)
            report["cleared"].append(key)
    return report
