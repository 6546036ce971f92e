from rest_framework import serializers

from bimride.fields import StrictCharField
from bimride.jobs.models import DeadLetter, Job


class JobSerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = [
            "id", "uid", "name", "queue", "priority", "state", "attempts", "max_attempts",
            "idempotency_key", "trace_id", "created_at", "run_at", "started_at", "finished_at",
            "next_attempt_at", "result", "last_error", "progress",
        ]  # fmt: skip
        read_only_fields = fields


class JobSummarySerializer(serializers.ModelSerializer):
    class Meta:
        model = Job
        fields = ["id", "name", "state"]
        read_only_fields = fields


class DeadLetterSerializer(serializers.ModelSerializer):
    job = JobSummarySerializer(read_only=True)
    retry_job = JobSummarySerializer(read_only=True, allow_null=True)
    resolved_by = serializers.EmailField(
        source="resolved_by.email", read_only=True, default=None, allow_null=True
    )

    class Meta:
        model = DeadLetter
        fields = [
            "id", "job", "name", "queue", "payload", "error_class", "error_message", "attempts",
            "history", "created_at", "resolution", "resolved_at", "resolved_by", "note",
            "retry_job",
        ]  # fmt: skip
        read_only_fields = fields


class DeadLetterRetryInput(serializers.Serializer):
    payload = serializers.JSONField(required=False, help_text="An edited payload (optional).")
    note = StrictCharField(required=False, allow_blank=True, max_length=1000, default="")


class DeadLetterDiscardInput(serializers.Serializer):
    note = StrictCharField(max_length=1000)


class QueueStatsSerializer(serializers.Serializer):
    queue = serializers.CharField()
    depth = serializers.DictField(child=serializers.IntegerField())
    depth_estimated = serializers.ListField(
        child=serializers.CharField(),
        help_text="The states whose depth is PostgreSQL's estimate (above 10,000), not a count.",
    )
    lag_seconds = serializers.FloatField()
    succeeded_last_hour = serializers.IntegerField()
    dead_last_hour = serializers.IntegerField()
    dead_letters_open = serializers.IntegerField()
