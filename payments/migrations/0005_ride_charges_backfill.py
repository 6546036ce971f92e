# Each ride's charges (rides.money.Charges) from its payments, as payments.services.state
# records them from now on; a completed ride whose ride payment was captured or released is
# settled (its receipt, if any, was sent already).
from django.db import migrations

BACKFILL = """
UPDATE rides_ride AS r SET charges = jsonb_build_object(
    'authorized', COALESCE(p.authorized, 0),
    'captured', COALESCE(p.captured, 0),
    'released', COALESCE(p.released, 0),
    'extra', COALESCE(p.extra, 0),
    'cancellation_fee', COALESCE(p.fee, 0),
    'refunded', COALESCE(p.refunded, 0),
    'settled', r.status = 'completed' AND COALESCE(p.taken, false)
)
FROM (
    SELECT ride_id,
        SUM(CASE WHEN kind = 'ride' AND stripe_payment_intent_id <> '' THEN amount END) AS authorized,
        SUM(CASE WHEN kind = 'ride' THEN amount_captured END) AS captured,
        SUM(CASE WHEN kind = 'ride' AND status IN
                ('released', 'captured', 'partially_refunded', 'refunded', 'disputed')
            AND stripe_payment_intent_id <> '' THEN amount - amount_captured END) AS released,
        SUM(CASE WHEN kind = 'extra' THEN amount_captured END) AS extra,
        SUM(CASE WHEN kind = 'cancellation_fee' THEN amount_captured END) AS fee,
        SUM(amount_refunded) AS refunded,
        bool_or(kind = 'ride' AND status IN
            ('released', 'captured', 'partially_refunded', 'refunded', 'disputed')) AS taken
    FROM payments_payment GROUP BY ride_id
) AS p
WHERE p.ride_id = r.id
"""


class Migration(migrations.Migration):
    dependencies = [
        ("payments", "0004_promo_codes_to_rides"),
        ("rides", "0005_ride_charges"),
    ]

    operations = [migrations.RunSQL(BACKFILL, migrations.RunSQL.noop)]
