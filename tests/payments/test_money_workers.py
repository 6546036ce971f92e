"""What a rider is charged and what the receipt says, end to end: rides requested with a promo
code through the API, authorised, captured and receipted by real `qcluster` workers talking to
the Stripe and email stand-ins. One ride per case the receipts once got wrong."""

import pytest

from rides.models import PromoCode, Ride
from rides.services import ride_money
from tests.conftest import client_for, wait_until
from tests.factories import DriverFactory, RiderFactory
from tests.payments.conftest import PICKUP, status_of

pytestmark = [pytest.mark.workers, pytest.mark.django_db(transaction=True)]

DROPOFF = {"lat": 52.50412, "lng": 13.405}  # an estimate of $6.76 from PICKUP
# (promo, final distance and minutes, what the card is charged, what the receipt shows)
CASES = [
    # $40.00 fare: $6.09 captured of the $6.09 hold, $29.91 charged on top
    (("percent", 10), ("18.75", 50), 3600, ["Discount (P10A): -$4.00", "Total: $36.00",
     "$6.09 held when you booked and an additional charge of $29.91"]),
    # $4.60 fare: $4.14 captured, the rest of the $6.09 hold released
    (("percent", 10), ("1.00", 3), 414, ["Discount (P10B): -$0.46", "Total: $4.14"]),
    # $8.62 fare: $5.07 captured of the hold, $1.40 on top
    (("percent", 25), ("2.60", 10), 647, ["Discount (P25C): -$2.15", "Total: $6.47"]),
    # $4.60 fare: the $5.00 promo covers it all, the hold is released
    (("fixed", 500), ("1.00", 3), 0, ["Discount (F500D): -$4.60", "Total: $0.00",
     "covered the whole fare: nothing was charged"]),
]  # fmt: skip


def test_each_receipt_says_what_the_card_was_charged(
    payment_workers, start_cluster, stripe_standin, postmark_standin, settings
):
    payment_workers()
    start_cluster("default", **postmark_standin.settings())
    driver = DriverFactory()
    rides = []
    for (kind, value), (km, minutes), charged, says in CASES:
        code = f"{'P' if kind == 'percent' else 'F'}{value}{'ABCD'[len(rides)]}"
        PromoCode.objects.create(code=code, kind=kind, value=value)
        as_rider = client_for(RiderFactory().user)
        body = {"pickup": PICKUP, "dropoff": DROPOFF, "promo_code": code}
        response = as_rider.post("/api/rides", body, format="json")
        assert response.status_code == 201 and response.json()["estimated_fare"]["amount"] == 676
        ride = Ride.objects.get(pk=response.json()["id"])
        wait_until(lambda ride=ride: status_of(ride) == "authorized", what="the authorisation")
        as_driver = client_for(driver.user)
        for step in ("accept", "start"):
            assert as_driver.post(f"/api/rides/{ride.pk}/{step}").status_code == 200
        done = {"distance_km": km, "duration_min": minutes}
        assert as_driver.post(f"/api/rides/{ride.pk}/complete", done).status_code == 200
        rides.append((ride, as_rider, charged, says))

    for ride, as_rider, charged, says in rides:
        email = ride.rider.user.email
        wait_until(lambda email=email: postmark_standin.count(to=email) == 1, what="the receipt")
        [receipt] = [m for m in postmark_standin.received() if m.to == email]
        for line in says:
            assert line in receipt.text, (line, receipt.text)
        assert ("card ending in 4242" in receipt.text) == (charged > 0)
        intents = stripe_standin.intents_of(ride_id=ride.pk)
        assert sum(pi.get("amount_received", 0) for pi in intents) == charged
        money = as_rider.get(f"/api/rides/{ride.pk}").json()["money"]
        assert money["charged"] == money["net_paid"] == charged and money["settled"]
        assert money == ride_money(Ride.objects.get(pk=ride.pk)).as_dict()
