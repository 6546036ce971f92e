import factory
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.hashers import make_password
from rest_framework.authtoken.models import Token

from rides.models import Driver, Ride, Rider

PASSWORD = "correct-horse-battery-staple"


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()
        django_get_or_create = ["username"]
        skip_postgeneration_save = True

    username = factory.Sequence(lambda n: f"user{n}@example.com")
    email = factory.SelfAttribute("username")
    first_name = factory.Faker("first_name")
    password = factory.LazyFunction(lambda: make_password(PASSWORD))

    @factory.post_generation
    def token(self, create, extracted, **kwargs):
        if create:
            Token.objects.get_or_create(user=self)


class RiderFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rider

    user = factory.SubFactory(UserFactory)
    name = factory.Faker("name")


class DriverFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Driver

    user = factory.SubFactory(UserFactory)
    name = factory.Faker("name")
    available = True
    lat = 52.52
    lng = 13.405


class RideFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Ride

    rider = factory.SubFactory(RiderFactory)
    pickup_lat, pickup_lng = 52.52, 13.405
    dropoff_lat, dropoff_lng = 52.50, 13.45
    estimated_fare = 1500
    currency = settings.FARE_CURRENCY
