from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.db.models.signals import post_migrate
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "bimride.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        from bimride.jobs.engine import (
            checks,  # noqa: F401 - registers the system checks
            q2compat,  # django-q2's models need the app registry
        )
        from bimride.jobs.ops import admin  # noqa: F401 - registers the admin pages

        q2compat.apply()  # refuses to start on a django-q2 its patches were not written for
        autodiscover_modules("events")  # every app's events.py declares what it publishes
        autodiscover_modules("tasks")  # every app's tasks.py registers its job types
        for module in settings.JOB_EXTRA_MODULES:
            import_module(module)
        post_migrate.connect(_sync_schedules, sender=self)


def _sync_schedules(**kwargs) -> None:
    """Keep django-q2's Schedule rows in step with the declarations at every migrate."""
    from bimride.jobs.engine.schedules import sync_schedules

    sync_schedules()
