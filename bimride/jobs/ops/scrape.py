"""The Prometheus scrape: the counters of this host's processes (`bimride.jobs.engine.metrics`)
plus gauges read from the ledger, the same on every host."""

from prometheus_client import CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily

from bimride.jobs.models import Alert
from bimride.jobs.ops.selectors import queue_stats


class DatabaseCollector:
    """Gauges read from the ledger at scrape time."""

    def collect(self):
        depth = GaugeMetricFamily(
            "bimride_queue_depth",
            "Jobs waiting or running (PostgreSQL's estimate above 10,000).",
            labels=["queue", "state"],
        )
        lag = GaugeMetricFamily(
            "bimride_queue_lag_seconds", "Age of the oldest due job not started.", labels=["queue"]
        )
        dead = GaugeMetricFamily(
            "bimride_dead_letters_open", "Dead letters not yet resolved.", labels=["queue"]
        )
        for q in queue_stats():
            for state, n in q["depth"].items():
                depth.add_metric([q["queue"], state], n)
            lag.add_metric([q["queue"]], q["lag_seconds"])
            dead.add_metric([q["queue"]], q["dead_letters_open"])
        alerts = GaugeMetricFamily("bimride_alerts_open", "Alerts not yet cleared.")
        alerts.add_metric([], Alert.objects.filter(cleared_at__isnull=True).count())
        yield from (depth, lag, dead, alerts)


def render() -> bytes:
    """The text exposition of every metric: this host's processes plus the database's."""
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(DatabaseCollector())
    return generate_latest(registry)
