from rest_framework import serializers

from bimride.fields import StrictCharField, StrictIntegerField
from bimride.jobs.models import Job
from bimride.jobs.serializers import JobSummarySerializer
from payments.models import Payment, PaymentEvent, Refund


class PaymentEventSerializer(serializers.ModelSerializer):
    class Meta:
        model = PaymentEvent
        fields = ["old", "new", "source", "note", "at"]
        read_only_fields = fields


class RefundSerializer(serializers.ModelSerializer):
    job = serializers.SerializerMethodField()

    class Meta:
        model = Refund
        fields = [
            "id", "payment", "amount", "currency", "reason", "status", "failure_message",
            "created_at", "finished_at", "job",
        ]  # fmt: skip
        read_only_fields = fields

    def get_job(self, refund: Refund) -> dict | None:
        job = Job.objects.filter(idempotency_key=f"refund:{refund.pk}").first()
        return JobSummarySerializer(job).data if job else None


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
