from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccessConfig(AppConfig):
    name = "bimride.access"
    default = True
    label = "access"
    verbose_name = "Staff access"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from bimride.access import audit

        audit.connect()


class StaffAdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin whose site asks staff for the second factor."""

    default = False  # named in INSTALLED_APPS in place of django.contrib.admin
    default_site = "bimride.access.admin_site.StaffAdminSite"
