"""The sign-in audit in the admin, read-only. Lockouts are axes' "Access attempts", its counted
failures: lifting (deleting) them is audited."""

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages

from bimride.access import audit
from bimride.access.models import SignInEvent


@admin.register(SignInEvent)
class SignInEventAdmin(admin.ModelAdmin):
    list_display = ["at", "kind", "lock", "username", "ip_address", "path", "reason", "by"]
    list_filter = ["kind", "lock", "path", "at"]
    search_fields = ["username", "=ip_address"]
    date_hierarchy = "at"
    list_select_related = ["user", "by"]

    def get_readonly_fields(self, request, obj=None):
        return [field.name for field in SignInEvent._meta.fields]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


class LockoutAdmin(AccessAttemptAdmin):
    """axes' counted failures per account and address, with "lift" as a named action."""

    actions = ["lift_lockout", *AccessAttemptAdmin.actions]

    @admin.action(
        description="Lift the lockout (forget these failed sign-ins)", permissions=["delete"]
    )
    def lift_lockout(self, request, queryset):
        lifted = {}
        for attempt in queryset:
            key = (attempt.username, attempt.ip_address)
            lifted[key] = lifted.get(key, 0) + attempt.failures_since_start
        queryset.delete()
        for (username, ip_address), failures in sorted(lifted.items(), key=str):
            audit.lockout_lifted(
                by=request.user, username=username, ip_address=ip_address, failures=failures
            )
        names = ", ".join(f"{u or '-'} from {ip}" for u, ip in sorted(lifted, key=str))
        self.message_user(request, f"Lifted: {names or 'nothing'}.", messages.SUCCESS)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, LockoutAdmin)
