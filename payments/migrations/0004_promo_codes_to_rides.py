# Promo codes now live in rides (its 0003 takes them over, tables unchanged): forget them here,
# in the migration state only; the tables are not dropped.

from django.db import migrations


class Migration(migrations.Migration):

    dependencies = [
        ('payments', '0003_payout_transfers'),
        ('rides', '0003_promo_codes'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.DeleteModel(name='PromoRedemption'),
                migrations.DeleteModel(name='PromoCode'),
            ],
            database_operations=[],
        ),
    ]
