"""The sign-in form of every browser way in: password, then the second factor when required."""

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm

from bimride.access import audit, otp
from bimride.access.lockout import lockout_message, retry_after_seconds


class SignInForm(AuthenticationForm):
    """Username and password, plus a code for staff who need a second factor.

    Every failure counts towards the lockout: a wrong password through axes' backend, a wrong
    code through `audit.sign_in_failed`. A locked-out account or address is told so plainly.
    """

    otp_token = forms.CharField(
        label="Code",
        required=False,
        max_length=32,
        strip=True,
        help_text="Staff: the 6-digit code from your authenticator app, or a recovery code.",
        widget=forms.TextInput(attrs={"autocomplete": "one-time-code", "inputmode": "text"}),
    )

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        self.user_cache = authenticate(self.request, username=username, password=password)
        if self.user_cache is None:
            self._refuse_if_locked_out(username)
            raise self.get_invalid_login_error()
        self.confirm_login_allowed(self.user_cache)
        self._check_second_factor(self.user_cache, self.cleaned_data.get("otp_token", ""))
        return self.cleaned_data

    def _check_second_factor(self, user, code: str) -> None:
        if not (user.is_staff and otp.has_authenticator(user)):
            # No device yet: a password-only session. Where the second factor is required
            # (production) it opens nothing but the enrolment page (admin_site, authentication).
            return
        if not code:
            self.user_cache = None
            raise forms.ValidationError(
                "Enter the 6-digit code from your authenticator app, or a recovery code.",
                code="otp_required",
            )
        device = otp.verify_code(user, code)
        if device is None:
            self.user_cache = None
            audit.sign_in_failed(self.request, user.get_username(), "otp")
            self._refuse_if_locked_out(user.get_username())
            raise forms.ValidationError("That code is not valid.", code="invalid_code")
        user.otp_device = device  # django_otp marks the session verified at login

    def _refuse_if_locked_out(self, username: str) -> None:
        if getattr(self.request, "axes_locked_out", False):
            seconds = retry_after_seconds(
                getattr(self.request, "axes_lock", ""),
                username.strip().lower(),
                self.request.axes_ip_address,
            )
            raise forms.ValidationError(lockout_message(seconds), code="locked_out")


class AdminSignInForm(SignInForm):
    """The admin's: staff accounts only, as Django's own admin form."""

    error_messages = AdminAuthenticationForm.error_messages
    required_css_class = "required"

    def confirm_login_allowed(self, user):
        super().confirm_login_allowed(user)
        if not user.is_staff:
            raise forms.ValidationError(
                self.error_messages["invalid_login"],
                code="invalid_login",
                params={"username": self.username_field.verbose_name},
            )
