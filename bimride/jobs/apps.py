from importlib import import_module

from django.apps import AppConfig
from django.conf import settings
from django.utils.module_loading import autodiscover_modules


class JobsConfig(AppConfig):
    name = "bimride.jobs"
    label = "jobs"
    verbose_name = "Jobs"

    def ready(self) -> None:
        autodiscover_modules("tasks")  # every app's tasks.py registers its job types
        for module in settings.JOB_EXTRA_MODULES:
            import_module(module)
