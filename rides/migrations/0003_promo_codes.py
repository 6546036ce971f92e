# Promo codes move from payments to rides (pricing sits below payments). Their tables stay as
# they are (`db_table`): this records in rides' state what payments' 0004 removes from its own,
# and copies nothing. Their content types move with them, so staff permissions stay.

import django.db.models.deletion
import django.utils.timezone
from django.db import migrations, models


MODELS = ["promocode", "promoredemption"]


def _move_content_types(source, target):
    def move(apps, schema_editor):
        content_types = apps.get_model("contenttypes", "ContentType").objects.using(
            schema_editor.connection.alias
        )
        taken = content_types.filter(app_label=target, model__in=MODELS).values("model")
        content_types.filter(app_label=source, model__in=MODELS).exclude(model__in=taken).update(
            app_label=target
        )

    return move


class Migration(migrations.Migration):

    dependencies = [
        ('contenttypes', '0002_remove_content_type_name'),
        ('payments', '0003_payout_transfers'),
        ('rides', '0002_location_pings'),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name='PromoCode',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('code', models.CharField(max_length=40, unique=True)),
                        ('kind', models.CharField(choices=[('percent', 'Percent'), ('fixed', 'Fixed')], max_length=10)),
                        ('value', models.PositiveIntegerField()),
                        ('currency', models.CharField(default='usd', max_length=3)),
                        ('expires_at', models.DateTimeField(blank=True, null=True)),
                        ('usage_limit', models.PositiveIntegerField(blank=True, null=True)),
                        ('times_used', models.PositiveIntegerField(default=0)),
                        ('active', models.BooleanField(default=True)),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                    ],
                    options={
                        'db_table': 'payments_promocode',
                        'ordering': ['code'],
                        'constraints': [models.CheckConstraint(condition=models.Q(('value__gt', 0)), name='promo_value_positive'), models.CheckConstraint(condition=models.Q(models.Q(('kind', 'percent'), _negated=True), ('value__lte', 100), _connector='OR'), name='promo_percent_max_100'), models.CheckConstraint(condition=models.Q(('usage_limit__isnull', True), ('times_used__lte', models.F('usage_limit')), _connector='OR'), name='promo_usage_within_limit')],
                    },
                ),
                migrations.CreateModel(
                    name='PromoRedemption',
                    fields=[
                        ('id', models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name='ID')),
                        ('created_at', models.DateTimeField(default=django.utils.timezone.now)),
                        ('promo', models.ForeignKey(on_delete=django.db.models.deletion.PROTECT, related_name='redemptions', to='rides.promocode')),
                        ('ride', models.OneToOneField(on_delete=django.db.models.deletion.CASCADE, related_name='promo', to='rides.ride')),
                        ('rider', models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name='promos', to='rides.rider')),
                    ],
                    options={
                        'db_table': 'payments_promoredemption',
                    },
                ),
    
            ],
            database_operations=[],
        ),
        migrations.RunPython(
            _move_content_types("payments", "rides"), _move_content_types("rides", "payments")
        ),
    ]
