"""Seed the API benchmark's database with the code under test: riders and available drivers
near the pickup, with API tokens. Run as a script (``python bench/api/seed.py``) with the
working directory and PYTHONPATH at the release measured, so that its own models write its own
schema; it prints ``{"riders": [...], "drivers": [...]}`` (the tokens) on stdout. It imports
nothing of `bench`, which that release may not have."""

import json
import os
import sys

RIDERS = DRIVERS = 300  # each reused every 300 rides (12 s at 200 requests/s; a ride takes 2 s)


def seed() -> dict[str, list[str]]:
    from django.contrib.auth import get_user_model
    from django.db import transaction
    from rest_framework.authtoken.models import Token

    from rides.models import Driver, Rider

    User = get_user_model()
    with transaction.atomic():
        users = {}
        for role, count in (("rider", RIDERS), ("driver", DRIVERS)):
            users[role] = User.objects.bulk_create(
                User(username=f"{role}{n}@bench.example", email=f"{role}{n}@bench.example")
                for n in range(count)
            )
        Rider.objects.bulk_create(Rider(user=u, name=u.username) for u in users["rider"])
        Driver.objects.bulk_create(
            Driver(
                user=u,
                name=u.username,
                available=True,
                lat=52.52 + (n % 20 - 10) * 0.001,
                lng=13.405 + (n // 20 - 7) * 0.001,
            )
            for n, u in enumerate(users["driver"])
        )
        tokens = {}
        for role in ("rider", "driver"):
            made = Token.objects.bulk_create(
                Token(user=u, key=Token.generate_key()) for u in users[role]
            )
            tokens[f"{role}s"] = [t.key for t in made]
    return tokens


if __name__ == "__main__":
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "bimride.settings")
    sys.path[0] = os.getcwd()  # the release measured, not this script's directory
    import django

    django.setup()
    print(json.dumps(seed()))
