"""Enrolment in the second factor and recovery codes, as admin pages; the browsable API's
sign-in page."""

from base64 import b32encode

import django_otp
from django.conf import settings
from django.contrib.auth import views as auth_views
from django.contrib.auth.views import redirect_to_login
from django.shortcuts import render
from django.views.decorators.cache import never_cache
from django.views.decorators.csrf import csrf_protect
from django.views.decorators.debug import sensitive_post_parameters

from bimride.access import otp
from bimride.access.forms import SignInForm


def may_only_enrol(request) -> bool:
    """A staff session signed in by password alone where the second factor is required."""
    user = request.user
    return (
        user.is_authenticated
        and user.is_active
        and user.is_staff
        and settings.STAFF_OTP_REQUIRED
        and not user.is_verified()
        and not otp.has_authenticator(user)
    )


def enrol_view(site):
    """Add an authenticator: scan the QR code, confirm with a code, keep the recovery codes.

    Open to a password-only staff session while the account has no authenticator (the first
    sign-in); replacing an authenticator takes a session verified by the current one."""

    @never_cache  # it shows a secret
    @csrf_protect
    @sensitive_post_parameters("code")
    def view(request):
        user = request.user
        if not (user.is_authenticated and user.is_active and user.is_staff):
            return redirect_to_login(request.get_full_path())
        if otp.has_authenticator(user) and not user.is_verified():
            return redirect_to_login(request.get_full_path())
        context = {**site.each_context(request), "title": "Two-factor sign-in"}
        if request.method == "POST":
            confirmed = otp.enrol_confirm(user, request.POST.get("code", ""))
            if confirmed is not None:
                device, codes = confirmed
                django_otp.login(request, device)
                context |= {"title": "Your recovery codes", "codes": codes, "enrolled": True}
                return render(request, "access/recovery_codes.html", context)
            context["error"] = "That code is not valid: enter the code your app shows now."
        device = otp.enrol_start(user)
        context |= {
            "qr_svg": otp.qr_svg(device),
            "secret": b32encode(device.bin_key).decode(),
            "replacing": otp.has_authenticator(user),
        }
        return render(request, "access/enrol.html", context)

    return view


def recovery_codes_view(site):
    """How many recovery codes are left; POST replaces them with new ones, shown once."""

    @sensitive_post_parameters()
    def view(request):
        context = {**site.each_context(request), "title": "Your recovery codes"}
        if request.method == "POST":
            context["codes"] = otp.recovery_codes_renew(request.user)
        else:
            context["left"] = otp.recovery_codes_left(request.user)
        return render(request, "access/recovery_codes.html", context)

    return view


class ApiLoginView(auth_views.LoginView):
    """The browsable API's session sign-in: the same form, lockout and second factor."""

    authentication_form = SignInForm
    template_name = "access/api_login.html"
