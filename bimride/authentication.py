"""How API clients authenticate (a module of its own: DRF's settings import it early)."""

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
