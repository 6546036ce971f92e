"""How API clients authenticate (a module of its own: DRF's settings import it early)."""

import pickle
import threading
import time

from django.conf import settings
from django.db.models.signals import post_delete, post_save
from rest_framework import authentication, exceptions
from rest_framework.authtoken.models import Token

# What a request reads of its user and their rider or driver profile; any other column is read
# when first used (Django's deferred fields).
TOKEN_COLUMNS = (
    "key",
    "user__id",
    "user__is_active",
    "user__is_staff",
    "user__is_superuser",
    "user__rider__id",
    "user__rider__user_id",
    "user__rider__name",
    "user__driver__id",
    "user__driver__user_id",
    "user__driver__name",
)


class TokenCache:
    """Tokens this process authenticated in the last AUTH_TOKEN_CACHE_SECONDS, with their user
    and profile, pickled: each request gets objects of its own. Deleting a token or saving its
    user forgets it here at once; in other processes it lapses within the TTL."""

    def __init__(self) -> None:
        self._entries: dict[str, tuple[float, int, bytes]] = {}  # key: (expires, user id, token)
        self._lock = threading.Lock()

    def get(self, key: str) -> Token | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return pickle.loads(entry[2])  # noqa: S301 (pickled by put(), in this process)

    def put(self, token: Token) -> None:
        ttl = settings.AUTH_TOKEN_CACHE_SECONDS
        if ttl <= 0:
            return
        with self._lock:
            if len(self._entries) >= settings.AUTH_TOKEN_CACHE_SIZE:
                now = time.monotonic()
                self._entries = {k: e for k, e in self._entries.items() if e[0] >= now}
                if len(self._entries) >= settings.AUTH_TOKEN_CACHE_SIZE:
                    self._entries.clear()
            self._entries[token.key] = (time.monotonic() + ttl, token.user_id, pickle.dumps(token))

    def forget(self, *, key: str | None = None, user_id: int | None = None) -> None:
        with self._lock:
            if key is not None:
                self._entries.pop(key, None)
            if user_id is not None:  # a user saved: a scan of this process's tokens
                for cached_key, entry in list(self._entries.items()):
                    if entry[1] == user_id:
                        del self._entries[cached_key]

    def forget_all(self) -> None:
        with self._lock:
            self._entries.clear()


tokens = TokenCache()


def _forget_token(sender, instance, **kwargs) -> None:
    tokens.forget(key=instance.key)


def _forget_user(sender, instance, **kwargs) -> None:
    tokens.forget(user_id=instance.pk)


post_delete.connect(_forget_token, sender=Token, dispatch_uid="bimride.tokens.token")
post_delete.connect(
    _forget_user, sender=settings.AUTH_USER_MODEL, dispatch_uid="bimride.tokens.del"
)
post_save.connect(_forget_user, sender=settings.AUTH_USER_MODEL, dispatch_uid="bimride.tokens.save")


class TokenAuthentication(authentication.TokenAuthentication):
    """DRF's token authentication in one narrow query, the token, its user and the user's rider
    or driver profile (the views and permissions read it on every request), and that query's
    answer kept for a few seconds per process (`TokenCache`)."""

    def authenticate_credentials(self, key):
        token = tokens.get(key)
        if token is None:
            try:
                # get(), not first(): no ORDER BY to build for a lookup by primary key
                token = (
                    Token.objects.select_related("user__rider", "user__driver")
                    .only(*TOKEN_COLUMNS)
                    .get(key=key)
                )
            except Token.DoesNotExist:
                raise exceptions.AuthenticationFailed("Invalid token.") from None
            tokens.put(token)
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
