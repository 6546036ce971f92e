from decimal import Decimal

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
from bimride.jobs import JobSummarySerializer, job_summaries_of
from rides.models import Ride
from rides.services import ride_money


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


class FareLineSerializer(serializers.Serializer):
    label = serializers.ChoiceField(choices=["base", "distance", "time"])
    amount = serializers.IntegerField()


class BreakdownSerializer(serializers.Serializer):
    """A ride's money (`rides.money`), every amount in minor units of `currency`: what the ride
    costs, what its promo takes off, and what the card was charged. Shown to the ride's rider
    and to staff; null for its driver."""

    currency = serializers.CharField()
    estimated_fare = serializers.IntegerField()
    fare = serializers.IntegerField(
        allow_null=True, help_text="The final fare; null until completed."
    )
    fare_lines = FareLineSerializer(
        many=True, help_text="Base, distance and time: add up to `fare`."
    )
    promo_code = serializers.CharField(allow_null=True)
    discount = serializers.IntegerField(help_text="The promo's discount on the final fare.")
    total_due = serializers.IntegerField(
        allow_null=True, help_text="fare - discount; null until completed."
    )
    authorized = serializers.IntegerField(help_text="Held on the card when the ride was requested.")
    captured = serializers.IntegerField(help_text="Taken from the authorisation.")
    released = serializers.IntegerField(help_text="Of the authorisation, given back.")
    extra_charged = serializers.IntegerField(help_text="Charged on top: the fare above the hold.")
    waived = serializers.IntegerField(help_text="An excess below the minimum charge, not charged.")
    cancellation_fee = serializers.IntegerField()
    refunded = serializers.IntegerField()
    settled = serializers.BooleanField(help_text="The total due has been taken.")
    charged = serializers.IntegerField(help_text="captured + extra_charged + cancellation_fee")
    net_paid = serializers.IntegerField(help_text="charged - refunded")


# A ride as the API shows it: its fields are declared here for the OpenAPI schema, its bodies
# built by `ride_body` and `ride_bodies` from values already read.
class RideSerializer(serializers.ModelSerializer):
    rider = PartySerializer()
    driver = PartySerializer(allow_null=True)
    pickup = PointSerializer(read_only=True)
    dropoff = PointSerializer(read_only=True)
    fare = MoneySerializer(read_only=True, allow_null=True)
    estimated_fare = MoneySerializer(read_only=True)
    jobs = JobSummarySerializer(read_only=True, many=True)
    money = BreakdownSerializer(read_only=True, allow_null=True)

    class Meta:
        model = Ride
        fields = [
            "id", "status", "rider", "driver", "pickup", "dropoff", "requested_at",
            "accepted_at", "started_at", "completed_at", "cancelled_at", "distance_km",
            "duration_min", "estimated_fare", "fare", "payment_status", "receipt_status", "jobs",
            "money",
        ]  # fmt: skip
        read_only_fields = fields

    def to_representation(self, ride: Ride) -> dict:
        return ride_body(ride, viewer=self.context["request"].user)


_when = serializers.DateTimeField().to_representation  # ISO 8601 in TIME_ZONE, as DRF writes it
CENT = Decimal("0.01")


def ride_body(ride: Ride, jobs: list[dict] | None = None, *, viewer) -> dict:
    """The ride's answer (`RideSerializer`) for `viewer`, read from the ride and its rider and
    driver as loaded; its jobs are read here unless given. Its money is the rider's and staff's."""
    if jobs is None:
        jobs = job_summaries_of(subjects=[f"ride:{ride.pk}"])[f"ride:{ride.pk}"]
    driver = ride.driver
    fare = ride.fare_amount
    return {
        "id": ride.pk,
        "status": ride.status,
        "rider": {"id": ride.rider_id, "name": ride.rider.name},
        "driver": None if driver is None else {"id": driver.pk, "name": driver.name},
        "pickup": {"lat": ride.pickup_lat, "lng": ride.pickup_lng},
        "dropoff": {"lat": ride.dropoff_lat, "lng": ride.dropoff_lng},
        "requested_at": _when(ride.requested_at),
        "accepted_at": ride.accepted_at and _when(ride.accepted_at),
        "started_at": ride.started_at and _when(ride.started_at),
        "completed_at": ride.completed_at and _when(ride.completed_at),
        "cancelled_at": ride.cancelled_at and _when(ride.cancelled_at),
        "distance_km": None if ride.distance_km is None else f"{ride.distance_km.quantize(CENT):f}",
        "duration_min": ride.duration_min,
        "estimated_fare": {"amount": ride.estimated_fare, "currency": ride.currency},
        "fare": None if fare is None else {"amount": fare, "currency": ride.currency},
        "payment_status": ride.payment_status,
        "receipt_status": ride.receipt_status,
        "jobs": jobs,
        "money": ride_money(ride).as_dict() if money_visible(ride, viewer) else None,
    }


def money_visible(ride: Ride, viewer) -> bool:
    return viewer.is_staff or ride.rider.user_id == viewer.pk


def ride_bodies(rides: list[Ride], *, viewer) -> list[dict]:
    """`ride_body` of each ride, with all their jobs read in one query."""
    jobs = job_summaries_of(subjects=[f"ride:{ride.pk}" for ride in rides])
    return [ride_body(ride, jobs[f"ride:{ride.pk}"], viewer=viewer) for ride in rides]
