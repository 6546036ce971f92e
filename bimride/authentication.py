"""How API clients authenticate (a module of its own: DRF's settings import it early)."""

from django.conf import settings
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication, loading the user's rider or driver profile in the same
    query: the views and permissions read it on every request."""

    def authenticate_credentials(self, key):
        token = Token.objects.select_related("user__rider", "user__driver").filter(key=key).first()
        if token is None:
            raise exceptions.AuthenticationFailed("Invalid token.")
        if not token.user.is_active:
            raise exceptions.AuthenticationFailed("User inactive or deleted.")
        return token.user, token


class SessionAuthentication(authentication.SessionAuthentication):
    """DRF's session authentication, except for a staff session that still owes its second
    factor (STAFF_OTP_REQUIRED): that one may only enrol, in the admin."""

    def authenticate(self, request):
        result = super().authenticate(request)
        if result is None:
            return None
        user = result[0]
        if user.is_staff and settings.STAFF_OTP_REQUIRED and not user.is_verified():
            return None
        return result
