"""The admin's job list at tens of millions of rows: counts that stop early, filters whose
choices come from the code instead of the table, and a date drill-down that probes an index.

Each replaces a piece of the stock changelist that reads every row of the ledger: `COUNT(*)`
for the paginator, `SELECT DISTINCT` for a filter's choices, and `SELECT DISTINCT
date_trunc(...)` for the date hierarchy.
"""

from datetime import datetime, timedelta

from django.conf import settings
from django.contrib import admin
from django.core.paginator import Paginator
from django.db import connection
from django.db.models import Max, Min, QuerySet
from django.utils import timezone
from django.utils.functional import cached_property

from bimride.jobs.engine import registry

COUNT_CAP = 10_000  # rows a filtered list counts before it says "more than"


def estimated_rows(table: str) -> int:
    """PostgreSQL's estimate of a table's rows (as of its last vacuum or analyze); -1 unknown."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT reltuples::bigint FROM pg_class WHERE oid = %s::regclass", [table])
        return cursor.fetchone()[0]


class LedgerPaginator(Paginator):
    """Counts at most COUNT_CAP rows; the whole unfiltered ledger from PostgreSQL's estimate.
    `count_label` says which: "123", "more than 10,000" or "about 10,000,000 (estimated)"."""

    @cached_property
    def count(self) -> int:
        rows = self.object_list
        if not rows.query.where:
            estimate = estimated_rows(rows.model._meta.db_table)
            if estimate > COUNT_CAP:
                self.count_label = f"about {estimate:,} (estimated)"
                return estimate
        counted = rows.order_by()[: COUNT_CAP + 1].count()  # in any order: no walk in id order
        self.count_label = f"more than {COUNT_CAP:,}" if counted > COUNT_CAP else f"{counted:,}"
        return counted


class LedgerQuerySet(QuerySet):
    """The admin's ledger. Its date drill-down reads the first and the last job by id (an index
    walk that stops at the first match, where MIN/MAX of the date may read every row that does
    not match) and finds the periods that hold jobs by one index probe per period (at most 31)
    instead of truncating the date of every row."""

    def aggregate(self, *args, **kwargs):
        wanted = kwargs.get("first"), kwargs.get("last")
        if not args and set(kwargs) == {"first", "last"} and _drill_down(*wanted):
            return self._bounds(wanted[0].source_expressions[0].name)
        return super().aggregate(*args, **kwargs)

    def _bounds(self, field_name: str) -> dict:
        """The date of the first and the last job by id: jobs are numbered as they are written,
        so these are the earliest and the latest dates, give or take the moment between
        writing two jobs at once; a period that holds none is left out below."""
        dates = self.order_by("id").values_list(field_name, flat=True)
        return {"first": dates.first(), "last": dates.last()}

    def datetimes(self, field_name, kind, order="ASC", tzinfo=None, is_dst=None):
        bounds = self._bounds(field_name)
        if bounds["first"] is None:
            return []
        start, last = (_truncate(timezone.localtime(bounds[k]), kind) for k in ("first", "last"))
        periods = []
        while start <= last:
            end = _next(start, kind)
            span = {f"{field_name}__gte": start, f"{field_name}__lt": end}
            if self.filter(**span).exists():
                periods.append(start)
            start = end
        return periods if order == "ASC" else periods[::-1]


def _drill_down(first, last) -> bool:
    """Whether an aggregate is the date hierarchy's: Min and Max of one field."""
    return (
        isinstance(first, Min)
        and isinstance(last, Max)
        and first.source_expressions[0].name == last.source_expressions[0].name
    )


def _truncate(moment: datetime, kind: str) -> datetime:
    day = moment.replace(hour=0, minute=0, second=0, microsecond=0)
    if kind == "day":
        return day
    return day.replace(day=1) if kind == "month" else day.replace(month=1, day=1)


def _next(start: datetime, kind: str) -> datetime:
    if kind == "day":
        following = start + timedelta(days=1)
    elif kind == "month":
        following = (start + timedelta(days=32)).replace(day=1)
    else:
        following = start.replace(year=start.year + 1)
    return timezone.make_aware(following.replace(tzinfo=None))  # across a DST change too


class _ChoiceFilter(admin.SimpleListFilter):
    """A filter on one column whose choices the code knows."""

    def choices_from_code(self) -> list[tuple[str, str]]:
        raise NotImplementedError

    def lookups(self, request, model_admin):
        return self.choices_from_code()

    def queryset(self, request, queryset):
        value = self.value()
        return queryset if value is None else queryset.filter(**{self.parameter_name: value})


class JobTypeFilter(_ChoiceFilter):
    title = "name"
    parameter_name = "name"

    def choices_from_code(self):
        return [(name, name) for name in sorted(registry.all_types())]


class QueueFilter(_ChoiceFilter):
    title = "queue"
    parameter_name = "queue"

    def choices_from_code(self):
        return [(queue, queue) for queue in settings.JOB_QUEUES]


class BackendFilter(_ChoiceFilter):
    title = "backend"
    parameter_name = "backend"

    def choices_from_code(self):
        return [("", "(a job type)"), *((alias, alias) for alias in settings.TASKS)]
