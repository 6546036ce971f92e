"""Ops staff's view of outgoing email and pushes: the notification log (with resend),
suppressions, devices (never their tokens) and pushes with their outcome. A dead push is retried
from the dead letters like any job."""

from django import forms
from django.contrib import admin, messages

from bimride.admin import job_link
from bimride.errors import BimRideError
from notifications import pushes, services
from notifications.models import Device, Notification, Push, Suppression, TrackingEvent


class TrackingEventInline(admin.TabularInline):
    """The provider's tracking events of the email, each once, in the order they happened."""

    model = TrackingEvent
    fields = readonly_fields = ["event_type", "occurred_at", "received_at", "key"]
    extra = 0
    can_delete = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Notification)
class NotificationAdmin(admin.ModelAdmin):
    list_display = [
        "id", "template", "recipient", "subject", "status", "attempts", "created_at", "sent_at",
        "last_event",
    ]  # fmt: skip
    list_filter = ["status", "template", "last_event", "created_at"]
    search_fields = ["recipient", "=key", "=message_id", "subject"]
    date_hierarchy = "created_at"
    actions = ["resend"]
    inlines = [TrackingEventInline]
    readonly_fields = [f.name for f in Notification._meta.fields] + ["job_link"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="job of the last attempt")
    def job_link(self, obj: Notification):
        return job_link(obj.job_id)

    @admin.action(description="Resend the selected emails (a new job each)")
    def resend(self, request, queryset):
        done, refused = [], []
        for notification in queryset:
            try:
                job = services.notification_resend(notification_id=notification.pk)
                done.append(f"#{job.pk}")
            except BimRideError as error:
                refused.append(f"#{notification.pk}: {error.message}")
        if done:
            messages.success(request, f"{len(done)} resend job(s) queued: {', '.join(done)}.")
        if refused:
            messages.warning(request, "Refused: " + "; ".join(refused))


class SuppressionForm(forms.ModelForm):
    class Meta:
        model = Suppression
        fields = ["email", "reason", "detail"]

    def clean_email(self) -> str:
        return self.cleaned_data["email"].strip().lower()


@admin.register(Suppression)
class SuppressionAdmin(admin.ModelAdmin):
    """Addresses we no longer send to. Deleting one lets email reach the address again."""

    form = SuppressionForm
    list_display = ["email", "reason", "created_at", "notification"]
    list_filter = ["reason", "created_at"]
    search_fields = ["email"]
    fields = ["email", "reason", "detail", "notification", "created_at"]
    readonly_fields = ["notification", "created_at"]
    actions = ["remove"]

    def get_readonly_fields(self, request, obj=None):
        return self.fields if obj is not None else self.readonly_fields

    def has_change_permission(self, request, obj=None) -> bool:
        return obj is None  # view only once created: remove it, or add another

    def save_model(self, request, obj, form, change) -> None:
        saved = services.suppression_add(email=obj.email, reason=obj.reason, detail=obj.detail)
        obj.pk = saved.pk

    def delete_model(self, request, obj) -> None:
        services.suppression_remove(suppression_id=obj.pk)

    def delete_queryset(self, request, queryset) -> None:
        for suppression in queryset:
            services.suppression_remove(suppression_id=suppression.pk)

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)  # `remove` says what deleting means here
        return actions

    @admin.action(description="Remove the selected suppressions (send to them again)")
    def remove(self, request, queryset):
        count = 0
        for suppression in queryset:
            services.suppression_remove(suppression_id=suppression.pk)
            count += 1
        messages.success(request, f"{count} suppression(s) removed.")


@admin.register(Device)
class DeviceAdmin(admin.ModelAdmin):
    """App installs that receive pushes. The push token is a secret: it is never shown."""

    list_display = [
        "id", "user", "platform", "app_version", "locale", "active", "last_seen_at",
        "last_push_at", "deactivated_reason",
    ]  # fmt: skip
    list_filter = ["active", "platform", "deactivated_reason", "last_seen_at"]
    search_fields = ["=id", "user__email", "user__username"]
    fields = readonly_fields = [
        "user", "platform", "app_version", "locale", "active", "created_at", "last_seen_at",
        "last_push_at", "deactivated_at", "deactivated_reason",
    ]  # fmt: skip
    actions = ["deactivate"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Deactivate the selected devices (send them nothing more)")
    def deactivate(self, request, queryset):
        count = 0
        for device in queryset.filter(active=True):
            pushes.device_deactivate(device_id=device.pk, reason=f"staff: {request.user}")
            count += 1
        messages.success(request, f"{count} device(s) deactivated.")


@admin.register(Push)
class PushAdmin(admin.ModelAdmin):
    """Every push and its outcome: sent, expired, stale, unregistered, skipped or failed."""

    list_display = [
        "id", "kind", "status", "user", "device", "ride", "attempts", "created_at", "sent_at",
        "title",
    ]  # fmt: skip
    list_filter = ["status", "kind", "created_at"]
    search_fields = ["=id", "=key", "=trace_id", "=ride__id", "user__email"]
    date_hierarchy = "created_at"
    list_select_related = ["user", "device"]
    readonly_fields = [f.name for f in Push._meta.fields] + ["job_link"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.display(description="job of the last attempt")
    def job_link(self, obj: Push):
        return job_link(obj.job_id)
