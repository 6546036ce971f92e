"""What happens to accounts and rides, published by rides' services in their transactions."""

from bimride.jobs import Event, Id


class AccountRegistered(Event, name="account.registered"):
    """A rider or driver signed up."""

    user_id: Id


class RideRequested(Event, name="ride.requested"):
    """A rider requested a ride: it is to be matched and its fare held on the card."""

    ride_id: Id


class RideOffered(Event, name="ride.offered"):
    """The ride was offered to a driver near the pickup."""

    ride_id: Id
    driver_id: Id


class RideAccepted(Event, name="ride.accepted"):
    """A driver accepted the ride."""

    ride_id: Id
    driver_id: Id


class RideDriverArriving(Event, name="ride.driver_arriving"):
    """The ride's driver came within ARRIVING_DISTANCE_KM of the pickup (once a ride)."""

    ride_id: Id


class RideStarted(Event, name="ride.started"):
    """The driver picked the rider up."""

    ride_id: Id


class RideCompleted(Event, name="ride.completed"):
    """The ride is over: its final fare is set, to be captured."""

    ride_id: Id


class RideCancelled(Event, name="ride.cancelled"):
    """The ride was cancelled before pickup: by its rider, its driver, or expiry ("system")."""

    ride_id: Id
    cancelled_by: str  # "rider", "driver" or "system"
    after_accept_seconds: int | None = None  # how long after acceptance, if it was accepted
