from django.apps import AppConfig


class RidesConfig(AppConfig):
    name = "rides"

    def ready(self) -> None:
        from bimride.jobs import register_subject
        from rides.selectors import ride_visible_to

        register_subject("ride", lambda user, pk: ride_visible_to(user=user, ride_id=pk))
