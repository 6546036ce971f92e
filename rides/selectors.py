"""Reads of rides that depend on who asks: each permission is written here once."""

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Exists, OuterRef, Q, QuerySet

from bimride.errors import NotFound
from rides.models import Ride, RideOffer


def role_of(user: AbstractBaseUser) -> str | None:
    """ "staff", "rider", "driver", or None for an account with no profile."""
    if user.is_staff:
        return "staff"
    if hasattr(user, "rider"):
        return "rider"
    if hasattr(user, "driver"):
        return "driver"
    return None


def ride_list_for(*, user: AbstractBaseUser) -> QuerySet[Ride]:
    """Staff see every ride, a rider their own, a driver those offered to or taken by them."""
    rides = Ride.objects.select_related("rider", "driver", "promo__promo")
    role = role_of(user)
    if role == "staff":
        return rides
    if role == "rider":
        return rides.filter(rider__user=user)
    if role == "driver":
        offered = RideOffer.objects.filter(ride=OuterRef("pk"), driver__user=user)
        return rides.filter(Q(driver__user=user) | Exists(offered))
    return rides.none()


def ride_get_for(*, user: AbstractBaseUser, ride_id: int) -> Ride:
    """The ride, if `user` may see it; otherwise NotFound (others' rides do not exist)."""
    try:
        return ride_list_for(user=user).get(pk=ride_id)  # get(): no ORDER BY to build
    except Ride.DoesNotExist:
        raise NotFound("No such ride.") from None


def ride_visible_to(*, user: AbstractBaseUser, ride_id: int) -> bool:
    return ride_list_for(user=user).filter(pk=ride_id).exists()


def offer_list_for(*, driver) -> QuerySet[Ride]:
    """Requested rides offered to `driver`, nearest first."""
    return (
        Ride.objects.filter(status=Ride.Status.REQUESTED, offers__driver=driver)
        .select_related("rider", "driver")
        .order_by("offers__distance_km", "requested_at")
    )
