"""Demo riders and drivers for `make run`, created through the services; safe to run again."""

from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from rides import services
from rides.models import Driver

DOMAIN = "demo.bimride.example"
PASSWORD = "demo-password-123"  # noqa: S105 - printed for the demo; passes the validators
RIDERS = 3
# Near Alexanderplatz, the Brandenburg Gate and the Hauptbahnhof.
DRIVER_LOCATIONS = [(52.5219, 13.4132), (52.5163, 13.3777), (52.5251, 13.3694)]


class Command(BaseCommand):
    help = "Create demo riders and available drivers around Berlin (nothing new on a rerun)."

    def handle(self, *args, **options) -> None:
        created = 0
        for n in range(1, RIDERS + 1):
            created += self.account(f"rider{n}@{DOMAIN}", f"Demo Rider {n}", "rider")
        for n, (lat, lng) in enumerate(DRIVER_LOCATIONS, start=1):
            created += self.account(f"driver{n}@{DOMAIN}", f"Demo Driver {n}", "driver")
            driver = Driver.objects.get(user__username=f"driver{n}@{DOMAIN}")
            if not driver.available:
                services.driver_set_availability(driver=driver, available=True)
            if not driver.car:
                services.driver_set_car(driver=driver, car=f"Silver Golf, B-BR {n:03d}")
            if driver.lat is None:  # one location ping per new driver
                services.driver_update_location(driver=driver, lat=lat, lng=lng)
        summary = f"created {created} demo accounts" if created else "demo accounts already exist"
        self.stdout.write(
            f"{summary}: rider1..{RIDERS}@{DOMAIN}, driver1..{len(DRIVER_LOCATIONS)}@{DOMAIN}, "
            f"password {PASSWORD}"
        )

    def account(self, email: str, name: str, role: str) -> int:
        """Register the account unless it exists; return how many were created (0 or 1)."""
        if get_user_model().objects.filter(username=email).exists():
            return 0
        services.account_register(email=email, password=PASSWORD, name=name, role=role)
        return 1
