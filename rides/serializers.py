from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from bimride.fields import (
    NumberOrDecimalStringField,
    StrictBooleanField,
    StrictCharField,
    StrictEmailField,
    StrictFloatField,
    StrictIntegerField,
    number_or_decimal_string,
)
from bimride.jobs.selectors import job_list_of
from bimride.jobs.serializers import JobSummarySerializer
from rides.models import Ride


class CoordinateField(StrictFloatField):
    """A finite JSON number; unlike DRF's FloatField, neither `true` nor `"52.5"`."""


class PointSerializer(serializers.Serializer):
    lat = CoordinateField(min_value=-90, max_value=90)
    lng = CoordinateField(min_value=-180, max_value=180)


class RegisterInput(serializers.Serializer):
    email = StrictEmailField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False, write_only=True)
    name = StrictCharField(max_length=120)
    role = serializers.ChoiceField(choices=["rider", "driver"])


class AccountSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    email = serializers.EmailField()
    name = serializers.CharField()
    role = serializers.CharField()
    token = serializers.CharField()


class TokenInput(serializers.Serializer):
    email = StrictCharField(max_length=150)
    password = StrictCharField(max_length=128, trim_whitespace=False, write_only=True)
    otp_token = StrictCharField(
        max_length=32, required=False, write_only=True, help_text="staff: a TOTP or recovery code"
    )


class TokenSerializer(serializers.Serializer):
    token = serializers.CharField()


class RideRequestInput(serializers.Serializer):
    pickup = PointSerializer()
    dropoff = PointSerializer()
    promo_code = StrictCharField(max_length=40, required=False)


@extend_schema_field(number_or_decimal_string(maximum=5000, decimal_places=2))
class DistanceField(NumberOrDecimalStringField):
    """Kilometres: a number (rounded to 10 m) or a decimal string, up to 5,000."""


class RideCompleteInput(serializers.Serializer):
    distance_km = DistanceField(max_digits=7, decimal_places=2, min_value=0, max_value=5000)
    duration_min = StrictIntegerField(min_value=0, max_value=24 * 60)


class RideCancelInput(serializers.Serializer):
    reason = StrictCharField(max_length=200, required=False, allow_blank=True, default="")


class AvailabilityInput(serializers.Serializer):
    available = StrictBooleanField()


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
