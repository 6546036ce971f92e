"""The sign-in audit in the admin, read-only. Lockouts are axes' "Access attempts": deleting
one lifts it."""

import logging

from axes.admin import AccessAttemptAdmin
from axes.models import AccessAttempt
from django.contrib import admin, messages

from bimride.access.models import SignInEvent

logger = logging.getLogger(__name__)


@admin.register(SignInEvent)
class SignInEventAdmin(admin.ModelAdmin):
    list_display = ["at", "kind", "username", "ip_address", "path", "reason", "user_agent"]
    list_filter = ["kind", "path", "at"]
    search_fields = ["username", "=ip_address"]
    date_hierarchy = "at"
    list_select_related = ["user"]

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
        lifted = sorted({f"{a.username or '-'} from {a.ip_address}" for a in queryset})
        count, _ = queryset.delete()
        logger.info("lockout lifted by %s: %s", request.user.get_username(), "; ".join(lifted))
        self.message_user(request, f"Lifted: {', '.join(lifted) or 'nothing'}.", messages.SUCCESS)


admin.site.unregister(AccessAttempt)
admin.site.register(AccessAttempt, LockoutAdmin)
