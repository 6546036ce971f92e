"""Payments in the admin: amounts, states and their audit trail; refunds made through the
service (as a job), fully by an action or partly from the refund form."""

from django import forms
from django.contrib import admin, messages

from bimride.admin import AuditInline
from bimride.errors import BimRideError
from payments import services
from payments.models import (
    Payment,
    PaymentEvent,
    Payout,
    Refund,
    StripeAccount,
    StripeCustomer,
    WebhookEvent,
)
from rides.admin import money_table


class PaymentEventInline(AuditInline):
    model = PaymentEvent
    fields = ["at", "old", "new", "source", "note"]


class RefundInline(AuditInline):
    model = Refund
    fields = ["id", "amount", "currency", "status", "reason", "requested_by", "created_at"]


@admin.register(Payment)
class PaymentAdmin(admin.ModelAdmin):
    list_display = [
        "id", "ride", "kind", "status", "amount", "amount_captured", "amount_refunded",
        "currency", "failure_code", "created_at",
    ]  # fmt: skip
    list_filter = ["status", "kind", "currency"]
    search_fields = ["=id", "=ride__id", "stripe_payment_intent_id", "rider__user__email"]
    date_hierarchy = "created_at"
    inlines = [PaymentEventInline, RefundInline]
    actions = ["refund_in_full"]

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Payment._meta.fields] + ["ride_money"]

    @admin.display(description="the ride's money")
    def ride_money(self, payment: Payment) -> str:
        return money_table(payment.ride)

    def has_add_permission(self, request) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False

    @admin.action(description="Refund what is left of the selected payments (as jobs)")
    def refund_in_full(self, request, queryset) -> None:
        done = 0
        for payment in queryset:
            try:
                services.refund_request(
                    payment_id=payment.pk, amount=None, reason="admin", user=request.user
                )
                done += 1
            except BimRideError as error:
                self.message_user(request, f"Payment {payment.pk}: {error.message}", messages.ERROR)
        if done:
            self.message_user(request, f"{done} refund(s) queued.", messages.SUCCESS)


class RefundForm(forms.ModelForm):
    amount = forms.IntegerField(min_value=1, required=False, help_text="Minor units; empty: all")

    class Meta:
        model = Refund
        fields = ["payment", "amount", "reason"]

    def clean(self):
        data = super().clean()
        payment = data.get("payment")
        if payment is not None:
            left = services.payment_refundable(payment)
            if payment.status not in ("captured", "partially_refunded", "disputed") or left < 1:
                raise forms.ValidationError(f"Payment {payment.pk} cannot be refunded.")
            if data.get("amount") and data["amount"] > left:
                self.add_error("amount", f"At most {left} is left to refund.")
        return data


@admin.register(Refund)
class RefundAdmin(admin.ModelAdmin):
    list_display = ["id", "payment", "amount", "currency", "status", "requested_by", "created_at"]
    list_filter = ["status"]
    raw_id_fields = ["payment"]
    form = RefundForm

    def get_readonly_fields(self, request, obj=None):
        return [f.name for f in Refund._meta.fields] if obj else []

    def save_model(self, request, obj, form, change) -> None:
        if change:
            return
        refund = services.refund_request(
            payment_id=obj.payment_id,
            amount=form.cleaned_data.get("amount"),
            reason=obj.reason,
            user=request.user,
        )
        obj.pk = refund.pk

    def has_delete_permission(self, request, obj=None) -> bool:
        return False


@admin.register(WebhookEvent)
class WebhookEventAdmin(admin.ModelAdmin):
    list_display = ["event_id", "type", "received_at", "processed_at", "outcome"]
    list_filter = ["type"]
    search_fields = ["event_id"]
    readonly_fields = ["event_id", "type", "payload", "received_at", "processed_at", "outcome"]


@admin.register(Payout)
class PayoutAdmin(admin.ModelAdmin):
    list_display = ["driver", "week", "rides", "amount", "currency", "status", "paid_at"]
    list_filter = ["week", "status"]
    search_fields = ["stripe_transfer_id", "driver__name"]
    readonly_fields = [
        "driver",
        "week",
        "rides",
        "amount",
        "currency",
        "status",
        "stripe_transfer_id",
        "failure_message",
        "failures",
        "created_at",
        "paid_at",
    ]


@admin.register(StripeAccount)
class StripeAccountAdmin(admin.ModelAdmin):
    list_display = ["driver", "account_id", "created_at"]
    readonly_fields = ["driver", "account_id", "created_at"]


@admin.register(StripeCustomer)
class StripeCustomerAdmin(admin.ModelAdmin):
    list_display = ["rider", "customer_id", "payment_method_id", "created_at"]
    readonly_fields = ["rider", "customer_id", "payment_method_id", "created_at"]
