from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bimride.jobs.selectors import job_list_of
from bimride.jobs.serializers import JobSummarySerializer
from rides.models import Ride


class CoordinateField(serializers.FloatField):
    """A finite number; unlike DRF's FloatField, JSON `true` is not read as 1.0."""

    def to_internal_value(self, data):
        if isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class PointSerializer(serializers.Serializer):
    lat = CoordinateField(min_value=-90, max_value=90)
    lng = CoordinateField(min_value=-180, max_value=180)


class RegisterInput(serializers.Serializer):
    email = serializers.EmailField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)
    name = serializers.CharField(max_length=120)
    role = serializers.ChoiceField(choices=["rider", "driver"])


class AccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    role = serializers.CharField()
    token = serializers.CharField()


class TokenInput(serializers.Serializer):
    email = serializers.CharField(max_length=150)
    password = serializers.CharField(max_length=128, trim_whitespace=False, write_only=True)
    otp_token = serializers.CharField(
        max_length=32, required=False, write_only=True, help_text="staff: a TOTP or recovery code"
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class RideRequestInput(serializers.Serializer):
    pickup = PointSerializer()
    dropoff = PointSerializer()
    promo_code = serializers.CharField(max_length=40, required=False)


class RideCompleteInput(serializers.Serializer):
    distance_km = serializers.DecimalField(
        max_digits=7, decimal_places=2, min_value=0, max_value=5000
    )
    duration_min = serializers.IntegerField(min_value=0, max_value=24 * 60)


class RideCancelInput(serializers.Serializer):
    reason = serializers.CharField(max_length=200, required=False, allow_blank=True, default="")


class AvailabilityInput(serializers.Serializer):
    available = serializers.BooleanField()


class PartySerializer(serializers.Serializer):
    id = serializers.IntegerField()
    name = serializers.CharField()


class MoneySerializer(serializers.Serializer):
    amount = serializers.IntegerField(help_text="Minor units (cents).")
    currency = serializers.CharField()


class RideSerializer(serializers.ModelSerializer):
    rider = PartySerializer()
    driver = PartySerializer(allow_null=True)
    pickup = serializers.SerializerMethodField()
    dropoff = serializers.SerializerMethodField()
    fare = serializers.SerializerMethodField()
    estimated_fare = serializers.SerializerMethodField()
    jobs = serializers.SerializerMethodField()

    class Meta:
        model = Ride
        fields = [
            "id", "status", "rider", "driver", "pickup", "dropoff", "requested_at",
            "accepted_at", "started_at", "completed_at", "cancelled_at", "distance_km",
            "duration_min", "estimated_fare", "fare", "payment_status", "receipt_status", "jobs",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(PointSerializer)
    def get_pickup(self, ride: Ride) -> dict:
        return {"lat": ride.pickup_lat, "lng": ride.pickup_lng}

    @extend_schema_field(PointSerializer)
    def get_dropoff(self, ride: Ride) -> dict:
        return {"lat": ride.dropoff_lat, "lng": ride.dropoff_lng}

    @extend_schema_field(MoneySerializer(allow_null=True))
    def get_fare(self, ride: Ride) -> dict | None:
        if ride.fare_amount is None:
            return None
        return {"amount": ride.fare_amount, "currency": ride.currency}

    @extend_schema_field(MoneySerializer)
    def get_estimated_fare(self, ride: Ride) -> dict:
        return {"amount": ride.estimated_fare, "currency": ride.currency}

    @extend_schema_field(JobSummarySerializer(many=True))
    def get_jobs(self, ride: Ride) -> list[dict]:
        return JobSummarySerializer(job_list_of(subject=f"ride:{ride.pk}"), many=True).data
