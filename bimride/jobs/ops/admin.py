"""Ops staff's view of the job system: the ledger, audit trails and dead-letter actions."""

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import Q
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import path, reverse
from django.utils.html import format_html, format_html_join

from bimride.admin import AuditInline, job_link
from bimride.errors import BimRideError
from bimride.jobs.engine import broker
from bimride.jobs.engine.plans import custom_plans
from bimride.jobs.engine.q2compat import OrmQ, QueueAdmin, Schedule
from bimride.jobs.engine.q2compat import ScheduleAdmin as QScheduleAdmin  # the page we extend
from bimride.jobs.models import Alert, DeadLetter, Job, JobEvent, ScheduleRun
from bimride.jobs.ops import dashboard, selectors, services
from bimride.jobs.ops.listing import (
    BackendFilter,
    JobTypeFilter,
    LedgerPaginator,
    LedgerQuerySet,
    QueueFilter,
)


class JobEventInline(AuditInline):
    model = JobEvent
    fields = ["at", "state", "attempt", "worker", "actor", "error", "note"]


@admin.register(Job)
class JobAdmin(admin.ModelAdmin):
    list_display = [
        "id", "name", "queue", "priority", "state", "attempts", "created_at", "run_at",
        "finished_at", "trace_id",
    ]  # fmt: skip
    list_filter = ["state", QueueFilter, JobTypeFilter, BackendFilter, "created_at"]
    search_fields = ["id", "idempotency_key", "trace_id", "subject"]  # exact: get_search_results
    date_hierarchy = "created_at"
    paginator = LedgerPaginator
    show_full_result_count = False
    inlines = [JobEventInline]
    actions = ["cancel_jobs"]
    readonly_fields = [f.name for f in Job._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def get_queryset(self, request):
        rows = super().get_queryset(request)
        return LedgerQuerySet(model=rows.model, query=rows.query, using=rows.db)

    def changelist_view(self, request, extra_context=None):
        """The list, rendered (its queries run) with plans for their parameters."""
        with custom_plans():
            response = super().changelist_view(request, extra_context)
            if hasattr(response, "render"):
                response.render()
        return response

    def get_search_results(self, request, queryset, search_term):
        """Jobs whose id, idempotency key, trace id or subject is exactly each term, each found
        by its index (a substring or case-insensitive match would read every row)."""
        for term in search_term.split():
            match = Q(idempotency_key=term) | Q(trace_id=term) | Q(subject=term)
            if term.isdigit() and int(term) < 2**63:
                match |= Q(pk=int(term))
            queryset = queryset.filter(match)
        return queryset, False

    def get_urls(self):
        dashboard = self.admin_site.admin_view(self.dashboard_view)
        return [path("dashboard/", dashboard, name="jobs_dashboard"), *super().get_urls()]

    def dashboard_view(self, request):
        """Queues at a glance: depth, lag, last hour's throughput, running jobs, dead letters."""
        with custom_plans():
            return self._dashboard(request)

    def _dashboard(self, request):
        series = selectors.throughput(minutes=60, bucket=5)
        queues = []
        for stats in selectors.queue_stats():
            bars = series.get(stats["queue"], [])
            top = max(bars, default=0) or 1
            queues.append(
                {
                    **stats,
                    "bars": [
                        {
                            "x": i * 10,
                            "y": 30 - round(28 * n / top),
                            "h": round(28 * n / top),
                            "n": n,
                        }
                        for i, n in enumerate(bars)
                    ],
                }
            )
        context = {
            **self.admin_site.each_context(request),
            "title": "Queue overview",
            "opts": self.model._meta,
            "queues": queues,
            "running": selectors.running_jobs(),
            "dead_by_type": selectors.deadletters_by_type(),
            "alerts": Alert.objects.filter(cleared_at__isnull=True),
            "panels": dashboard.panels(),
        }
        return render(request, "admin/jobs/dashboard.html", context)

    @admin.action(description="Cancel the selected queued or retrying jobs")
    def cancel_jobs(self, request, queryset):
        _apply(request, queryset, lambda job: services.job_cancel(job_id=job.pk, user=request.user))


def _apply(request, queryset, operation) -> None:
    done, refused = 0, []
    for obj in queryset:
        try:
            operation(obj)
            done += 1
        except BimRideError as error:
            refused.append(f"#{obj.pk}: {error.message}")
    if done:
        messages.success(request, f"{done} done.")
    if refused:
        messages.warning(request, "Refused: " + "; ".join(refused))


class EditPayloadForm(forms.Form):
    payload = forms.CharField(widget=forms.Textarea(attrs={"rows": 12, "cols": 80}))
    note = forms.CharField(required=False)

    def clean_payload(self) -> dict:
        try:
            payload = json.loads(self.cleaned_data["payload"])
        except ValueError as error:
            raise forms.ValidationError(f"Not valid JSON: {error}") from None
        if not isinstance(payload, dict):
            raise forms.ValidationError("The payload must be a JSON object.")
        return payload


class DiscardForm(forms.Form):
    note = forms.CharField(widget=forms.Textarea(attrs={"rows": 3, "cols": 80}))


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = [
        "id", "name", "queue", "error_class", "attempts", "created_at", "resolution", "job_link",
        "retry_link",
    ]  # fmt: skip
    list_filter = ["resolution", "queue", "name", "error_class", "created_at"]
    search_fields = ["=job__id", "error_message", "=job__trace_id"]
    actions = ["retry", "discard"]
    readonly_fields = [
        "job_link", "name", "queue", "payload", "error_class", "error_message", "traceback",
        "attempts", "history", "created_at", "resolution", "resolved_at", "resolved_by", "note",
        "retry_link",
    ]  # fmt: skip
    exclude = ["job", "retry_job"]
    change_form_template = "admin/jobs/deadletter/change_form.html"

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="job")
    def job_link(self, obj: DeadLetter):
        return job_link(obj.job_id)

    @admin.display(description="retried as")
    def retry_link(self, obj: DeadLetter):
        return job_link(obj.retry_job_id)

    @admin.action(description="Retry the selected dead letters (same payload)")
    def retry(self, request, queryset):
        _apply(
            request,
            queryset,
            lambda dl: services.deadletter_retry(dead_letter_id=dl.pk, user=request.user),
        )

    @admin.action(description="Discard the selected dead letters")
    def discard(self, request, queryset):
        if "apply" in request.POST:
            form = DiscardForm(request.POST)
            if form.is_valid():
                note = form.cleaned_data["note"]
                _apply(
                    request,
                    queryset,
                    lambda dl: services.deadletter_discard(
                        dead_letter_id=dl.pk, user=request.user, note=note
                    ),
                )
                return None
        else:
            form = DiscardForm()
        context = {
            **self.admin_site.each_context(request),
            "title": "Discard dead letters",
            "form": form,
            "queryset": queryset,
            "action": "discard",
            "opts": self.model._meta,
        }
        return render(request, "admin/jobs/deadletter/discard.html", context)

    def get_urls(self):
        own = [
            path(
                "<int:dead_letter_id>/retry-edited/",
                self.admin_site.admin_view(self.retry_edited_view),
                name="jobs_deadletter_retry_edited",
            )
        ]
        return own + super().get_urls()

    def retry_edited_view(self, request, dead_letter_id: int):
        dead_letter = get_object_or_404(DeadLetter, pk=dead_letter_id)
        if request.method == "POST":
            form = EditPayloadForm(request.POST)
            if form.is_valid():
                try:
                    job = services.deadletter_retry(
                        dead_letter_id=dead_letter.pk,
                        user=request.user,
                        payload=form.cleaned_data["payload"],
                        note=form.cleaned_data["note"],
                    )
                except BimRideError as error:
                    fields = "; ".join(f"{k}: {v}" for k, v in error.fields.items())
                    form.add_error("payload", f"{error.message} {fields}".strip())
                else:
                    messages.success(request, f"Retried as job #{job.pk}.")
                    return redirect("admin:jobs_job_change", job.pk)
        else:
            form = EditPayloadForm(initial={"payload": json.dumps(dead_letter.payload, indent=2)})
        context = {
            **self.admin_site.each_context(request),
            "title": f"Retry dead letter {dead_letter.pk} with an edited payload",
            "form": form,
            "dead_letter": dead_letter,
            "opts": self.model._meta,
        }
        return render(request, "admin/jobs/deadletter/retry_edited.html", context)


@admin.register(ScheduleRun)
class ScheduleRunAdmin(admin.ModelAdmin):
    list_display = ["schedule", "intended_at", "fired_at", "job_link", "outcome", "dead_letter"]
    list_filter = ["schedule", "intended_at"]
    list_select_related = ["job", "job__dead_letter"]
    date_hierarchy = "intended_at"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="job")
    def job_link(self, run: ScheduleRun):
        return job_link(run.job_id)

    @admin.display(description="outcome (started → finished)")
    def outcome(self, run: ScheduleRun) -> str:
        if run.job is None:
            return "pruned"
        times = [
            t.strftime("%H:%M:%S") if t else "…" for t in (run.job.started_at, run.job.finished_at)
        ]
        return f"{run.job.state} ({times[0]} → {times[1]})"

    @admin.display(description="dead letter")
    def dead_letter(self, run: ScheduleRun):
        letter = getattr(run.job, "dead_letter", None) if run.job else None
        if letter is None:
            return "-"
        url = reverse("admin:jobs_deadletter_change", args=[letter.pk])
        return format_html('<a href="{}">{}</a>', url, letter.error_class)


class ScheduleWithRunsAdmin(QScheduleAdmin):
    """django-q2's schedule page, plus the runs of a declared schedule."""

    readonly_fields = [*getattr(QScheduleAdmin, "readonly_fields", []), "recent_runs"]

    @admin.display(description="runs")
    def recent_runs(self, schedule: Schedule):
        url = reverse("admin:jobs_schedulerun_changelist") + f"?schedule={schedule.name}"
        runs = ScheduleRun.objects.filter(schedule=schedule.name).select_related("job")[:10]
        rows = format_html_join(
            "",
            "<li>{} — {}</li>",
            ((r.intended_at, r.job.state if r.job else "pruned") for r in runs),
        )
        return format_html('<ul>{}</ul><a href="{}">All runs</a>', rows, url)


admin.site.unregister(Schedule)
admin.site.register(Schedule, ScheduleWithRunsAdmin)


class QueuedTaskAdmin(QueueAdmin):
    """django-q2's queued-tasks page, reading jobs' rows too: their payload is the job (JSON),
    not a task package, so django-q2 would show no task. A job's row shows its job; its task id
    is made when a pusher takes it. A row that cannot be read shows `*<error>` as its task id."""

    list_display = ("id", "key", "job", "name", "func", "lock", "task_id")
    fields = ("key", "lock", "job", "task_id", "name", "group", "func", "args", "kwargs", "options")
    readonly_fields = fields[2:]

    @staticmethod
    def task(row: OrmQ) -> dict:
        if not broker.is_job_row(row.payload):
            return row.task  # django-q2's reading: cached, and `*<error>` for a bad package
        try:
            return broker.job_task(row.payload)
        except (ValueError, KeyError, TypeError) as error:
            return {"id": f"*{type(error).__name__}"}

    @admin.display(description="job")
    def job(self, row: OrmQ):
        task = self.task(row)
        return job_link(task["args"][0] if task.get("func") in broker.RUNS_JOB else None)

    @admin.display(description="task id")
    def task_id(self, row: OrmQ):
        return self.task(row).get("id")

    @admin.display(description="name")
    def name(self, row: OrmQ):
        return self.task(row).get("name")

    @admin.display(description="group")
    def group(self, row: OrmQ):
        return self.task(row).get("group")

    @admin.display(description="function")
    def func(self, row: OrmQ):
        func = self.task(row).get("func")
        return func if isinstance(func, str | None) else f"{func.__module__}.{func.__qualname__}"

    @admin.display(description="arguments")
    def args(self, row: OrmQ):
        return self.task(row).get("args")

    @admin.display(description="keyword arguments")
    def kwargs(self, row: OrmQ):
        return self.task(row).get("kwargs")

    @admin.display(description="options")
    def options(self, row: OrmQ):
        shown = {"id", "name", "group", "func", "args", "kwargs"}
        return {k: v for k, v in self.task(row).items() if k not in shown}


admin.site.unregister(OrmQ)
admin.site.register(OrmQ, QueuedTaskAdmin)


@admin.register(Alert)
class AlertAdmin(admin.ModelAdmin):
    list_display = ["key", "message", "opened_at", "last_seen_at", "cleared_at"]
    list_filter = ["key", ("cleared_at", admin.EmptyFieldListFilter)]
    readonly_fields = ["key", "message", "opened_at", "last_seen_at", "cleared_at"]

    def has_add_permission(self, request) -> bool:
        return False
