from rest_framework import serializers

from bimride.fields import StrictCharField, StrictIntegerField
from bimride.jobs import JobSummarySerializer
from payments.models import Payment, PaymentEvent, Refund


class PaymentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentEvent
        fields = ["old", "new", "source", "note", "at"]
        read_only_fields = fields


# A refund, with the job that makes it (`selectors.refund_jobs_attach` sets `refund.job`).
class RefundSerializer(serializers.ModelSerializer):
    job = JobSummarySerializer(read_only=True, allow_null=True)

    class Meta:
        model = Refund
        fields = [
            "id", "payment", "amount", "currency", "reason", "status", "failure_message",
            "created_at", "finished_at", "job",
        ]  # fmt: skip
        read_only_fields = fields


class PaymentSerializer(serializers.ModelSerializer):
    events = PaymentEventSerializer(many=True, read_only=True)
    refunds = RefundSerializer(many=True, read_only=True)

    class Meta:
        model = Payment
        fields = [
            "id", "ride", "kind", "status", "amount", "amount_captured", "amount_refunded",
            "discount", "currency", "failure_code", "failure_message", "created_at",
            "updated_at", "events", "refunds",
        ]  # fmt: skip
        read_only_fields = fields


class RefundInput(serializers.Serializer):
    amount = StrictIntegerField(
        min_value=1, required=False, help_text="Minor units; omitted: all that is left."
    )
    reason = StrictCharField(max_length=200, required=False, allow_blank=True, default="")
