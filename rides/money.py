"""A ride's money, computed in one place: what the ride costs, what its promo takes off, what the
card is asked for and what it was charged. Pure functions of values: capture, the extra charge,
the release, every email, the API and the admin read them; nothing else computes a discount.

Amounts are integers in minor units of the ride's currency.

The rounding rule: a percent promo takes `floor(amount × percent / 100)` off, so a discount is
never more than the promo says (10 % of 4.63 is 0.46); a fixed promo takes its value off; either
is at most the amount, so a total is never negative.
"""

from dataclasses import asdict, dataclass, field
from decimal import Decimal

MIN_CHARGE = 50  # Stripe's smallest charge in usd/eur: no smaller hold is made, and a smaller
# excess over the authorisation is waived (it would cost more to charge than it brings)


@dataclass(frozen=True)
class Promo:
    """A redeemed promo code: `kind` "percent" (value 1..100) or "fixed" (minor units)."""

    code: str
    kind: str
    value: int


@dataclass(frozen=True)
class Charges:
    """What the payments app recorded of a ride's payments (written by it, read by everyone):
    the authorisation made (0 when none was), what was captured of it, what was released, what
    was charged on top, the cancellation fee charged, and what was refunded of all of them.
    `settled` once the completed ride's total due has been taken (captured, charged, waived)."""

    authorized: int = 0
    captured: int = 0
    released: int = 0
    extra: int = 0
    cancellation_fee: int = 0
    refunded: int = 0
    settled: bool = False


@dataclass(frozen=True)
class Tariff:
    base: int
    per_km: int
    per_min: int


@dataclass(frozen=True)
class Plan:
    """How a total due is taken from an authorisation: captured from it (the rest of it is
    released), charged on top, or waived (an excess below MIN_CHARGE)."""

    capture: int
    extra: int
    waived: int


@dataclass(frozen=True)
class Breakdown:
    """A ride's money as every reader shows it. `fare_lines` (base, distance, time) add up to
    `fare` when the tariff still gives the ride's fare; empty otherwise (the total only)."""

    currency: str
    estimated_fare: int
    fare: int | None = None
    fare_lines: list[tuple[str, int]] = field(default_factory=list)
    promo_code: str | None = None
    discount: int = 0
    total_due: int | None = None
    authorized: int = 0
    captured: int = 0
    released: int = 0
    extra_charged: int = 0
    waived: int = 0
    cancellation_fee: int = 0
    refunded: int = 0
    settled: bool = False

    @property
    def charged(self) -> int:
        """What the card was charged in all, before refunds."""
        return self.captured + self.extra_charged + self.cancellation_fee

    @property
    def net_paid(self) -> int:
        return self.charged - self.refunded

    def as_dict(self) -> dict:
        """The plain-values form the API and the admin show."""
        body = asdict(self)
        body["fare_lines"] = [
            {"label": label, "amount": amount} for label, amount in self.fare_lines
        ]
        return body | {"charged": self.charged, "net_paid": self.net_paid}


def discount_on(amount: int, promo: Promo | None) -> int:
    """What `promo` takes off `amount`, by the rounding rule above."""
    if promo is None:
        return 0
    if promo.kind == "percent":
        return min(amount, amount * promo.value // 100)
    return min(amount, promo.value)


def authorization_amount(estimated_fare: int, promo: Promo | None) -> int:
    """What the card is asked to hold when the ride is requested: the estimate less its promo,
    or nothing when that is below MIN_CHARGE (Stripe refuses it; the fare is then charged on
    completion, or waived if it is below the minimum too)."""
    held = estimated_fare - discount_on(estimated_fare, promo)
    return held if held >= MIN_CHARGE else 0


def capture_plan(total_due: int, authorized: int) -> Plan:
    """Take `total_due` from an authorisation of `authorized`: capture up to it, charge the
    excess on top unless it is below MIN_CHARGE, in which case it is waived."""
    capture = min(total_due, authorized)
    excess = total_due - capture
    if excess >= MIN_CHARGE:
        return Plan(capture=capture, extra=excess, waived=0)
    return Plan(capture=capture, extra=0, waived=excess)


def fare_lines(tariff: Tariff, distance_km: Decimal, duration_min: int) -> list[tuple[str, int]]:
    """The base, distance and time parts of a fare under `tariff`."""
    distance = int((Decimal(tariff.per_km) * Decimal(str(distance_km))).to_integral_value())
    return [("base", tariff.base), ("distance", distance), ("time", tariff.per_min * duration_min)]


def fare(tariff: Tariff, distance_km: Decimal | float, duration_min: int) -> int:
    return sum(amount for _, amount in fare_lines(tariff, Decimal(str(distance_km)), duration_min))


def breakdown(
    *,
    currency: str,
    estimated_fare: int,
    final_fare: int | None,
    distance_km: Decimal | None,
    duration_min: int | None,
    tariff: Tariff,
    promo: Promo | None,
    charges: Charges,
) -> Breakdown:
    """The ride's money from its fare, its promo and what was charged. Before completion
    (`final_fare` None) it has no total due; after, the waived part is what the plan waives
    once the authorisation has been settled."""
    lines: list[tuple[str, int]] = []
    discount = total_due = None
    waived = 0
    if final_fare is not None:
        if distance_km is not None and duration_min is not None:
            lines = fare_lines(tariff, distance_km, duration_min)
            if sum(amount for _, amount in lines) != final_fare:
                lines = []  # the tariff changed since the ride: the total only
        discount = discount_on(final_fare, promo)
        total_due = final_fare - discount
        if charges.settled:
            waived = capture_plan(total_due, charges.authorized).waived
    return Breakdown(
        currency=currency,
        estimated_fare=estimated_fare,
        fare=final_fare,
        fare_lines=lines,
        promo_code=promo.code if promo else None,
        discount=discount or 0,
        total_due=total_due,
        authorized=charges.authorized,
        captured=charges.captured,
        released=charges.released,
        extra_charged=charges.extra,
        waived=waived,
        cancellation_fee=charges.cancellation_fee,
        refunded=charges.refunded,
        settled=charges.settled,
    )
