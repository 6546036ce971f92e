"""The admin site: staff sign in with the second factor, and are guided to enrol one."""

from django.conf import settings
from django.contrib import admin
from django.shortcuts import redirect
from django.urls import path

from bimride.access import otp, views
from bimride.access.forms import AdminSignInForm


class StaffAdminSite(admin.AdminSite):
    login_form = AdminSignInForm
    login_template = "access/admin_login.html"

    def has_permission(self, request) -> bool:
        """Active staff; where the second factor is required, with a verified session."""
        if not super().has_permission(request):
            return False
        return not settings.STAFF_OTP_REQUIRED or request.user.is_verified()

    def login(self, request, extra_context=None):
        if request.method == "GET" and views.may_only_enrol(request):
            return redirect("admin:access_enrol")
        return super().login(request, extra_context)

    def index(self, request, extra_context=None):
        enrolled = otp.has_authenticator(request.user)
        extra_context = {
            **(extra_context or {}),
            "otp_enrolled": enrolled,
            "recovery_codes_left": otp.recovery_codes_left(request.user) if enrolled else 0,
        }
        return super().index(request, extra_context)

    def get_urls(self):
        return [
            path("access/enrol/", views.enrol_view(self), name="access_enrol"),
            path(
                "access/recovery-codes/",
                self.admin_view(views.recovery_codes_view(self)),
                name="access_recovery_codes",
            ),
            *super().get_urls(),
        ]
