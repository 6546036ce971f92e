"""Admin pieces every app's admin shares: read-only audit-trail inlines and links to jobs."""

from django.contrib import admin
from django.urls import reverse
from django.utils.html import format_html


class AuditInline(admin.TabularInline):
    """An audit trail shown under its object: never added to, changed or deleted here."""

    extra = 0
    can_delete = False

    def get_readonly_fields(self, request, obj=None):
        return self.fields

    def has_add_permission(self, request, obj=None) -> bool:
        return False


def job_link(job_id: int | None):
    """A link to a job's admin page, or "-"."""
    if job_id is None:
        return "-"
    return format_html(
        '<a href="{}">#{}</a>', reverse("admin:jobs_job_change", args=[job_id]), job_id
    )
