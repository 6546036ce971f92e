"""Sign-in protection in layers, on django-axes' counts of failed sign-ins (AccessAttempt rows,
one per account, address and user agent), each lapsing AXES_COOLOFF_TIME after its last failure:

1. the account from one address (axes itself, AXES_LOCKOUT_PARAMETERS): AXES_FAILURE_LIMIT
   failures lock that pair only, so guessing at an account locks the guesser's address out of
   it and nobody else;
2. the address, at any accounts: LOGIN_ADDRESS_FAILURE_LIMIT failures, a figure far above what
   a carrier-NAT address full of riders mistypes, lock the address out of signing in (the rest
   of the API stays open to it);
3. the account, from any addresses: LOGIN_ACCOUNT_FAILURE_LIMIT failures slow it down, refusing
   sign-ins from addresses it has not signed in from (KnownAddress), so the owner still signs in
   from home while a botnet waits; a staff account is locked everywhere after AXES_FAILURE_LIMIT,
   known address or not, until it lapses or staff lift it.

A refusal is 429 with `Retry-After`, in the API's error shape under /api/, on the login form
elsewhere. Attempts refused while locked are neither checked nor counted.
"""

import math
from datetime import timedelta

from axes.handlers.database import AxesDatabaseHandler
from axes.models import AccessAttempt
from axes.signals import user_locked_out
from django.conf import settings
from django.contrib.auth import get_user_model
from django.db.models import Max, Sum
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

from bimride.access.models import KnownAddress, SignInEvent

Lock = SignInEvent.Lock

LOCKED_OUT_MESSAGE = "Too many failed sign-ins. Try again in {minutes} minutes."


def attempted_username(request, credentials: dict | None) -> str | None:
    """The account a sign-in names, as the user table spells it (emails are lower case)."""
    if credentials and credentials.get("username"):
        username = credentials["username"]
    else:
        username = request.POST.get("username") if request is not None else None
    return username.strip().lower() if isinstance(username, str) else None


def client_ip(request) -> str | None:
    """REMOTE_ADDR, or with TRUSTED_PROXY_COUNT proxies the address the outermost one saw.

    Each trusted proxy appends the address it received from to X-Forwarded-For, so only the
    last TRUSTED_PROXY_COUNT entries are trusted; anything the client put before them is not.
    """
    count = settings.TRUSTED_PROXY_COUNT
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    if count > 0 and forwarded:
        hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
        if hops:
            return hops[-min(count, len(hops))]
    return request.META.get("REMOTE_ADDR")


def _counted(lock: str, username: str | None, ip_address: str | None):
    """The live counted failures a lock of this kind is made of."""
    since = timezone.now() - settings.AXES_COOLOFF_TIME
    rows = AccessAttempt.objects.filter(attempt_time__gte=since)
    if lock in (Lock.ACCOUNT_ADDRESS, Lock.ACCOUNT):
        rows = rows.filter(username=username)
    if lock in (Lock.ACCOUNT_ADDRESS, Lock.ADDRESS):
        rows = rows.filter(ip_address=ip_address)
    return rows


def failures(lock: str, username: str | None, ip_address: str | None) -> int:
    """How many live failures count towards a lock of this kind."""
    return _counted(lock, username, ip_address).aggregate(n=Sum("failures_since_start"))["n"] or 0


def is_known_address(user_id: int, ip_address: str | None) -> bool:
    """The account signed in from this address within LOGIN_KNOWN_ADDRESS_DAYS."""
    since = timezone.now() - timedelta(days=settings.LOGIN_KNOWN_ADDRESS_DAYS)
    return KnownAddress.objects.filter(
        user_id=user_id, ip_address=ip_address, last_signed_in_at__gte=since
    ).exists()


def lock_beyond_the_pair(username: str | None, ip_address: str | None) -> str:
    """The layer past axes' own (account and address together) that refuses a sign-in at
    `username` from `ip_address` now, or "" if none does."""
    if ip_address and failures(Lock.ADDRESS, None, ip_address) >= (
        settings.LOGIN_ADDRESS_FAILURE_LIMIT
    ):
        return Lock.ADDRESS
    if not username:
        return Lock.NONE
    count = failures(Lock.ACCOUNT, username, None)
    if count < min(settings.AXES_FAILURE_LIMIT, settings.LOGIN_ACCOUNT_FAILURE_LIMIT):
        return Lock.NONE
    user = get_user_model().objects.filter(username=username).values("id", "is_staff").first()
    if user is not None and user["is_staff"]:
        return Lock.ACCOUNT if count >= settings.AXES_FAILURE_LIMIT else Lock.NONE
    if count < settings.LOGIN_ACCOUNT_FAILURE_LIMIT:
        return Lock.NONE
    if user is not None and is_known_address(user["id"], ip_address):
        return Lock.NONE  # the owner, from where they signed in before
    return Lock.ACCOUNT


class LayeredLockoutHandler(AxesDatabaseHandler):
    """axes' database handler (the account and address together, AXES_LOCKOUT_PARAMETERS) plus
    the address and account layers; `request.axes_lock` names the layer that refused."""

    def is_locked(self, request, credentials=None) -> bool:
        if super().is_locked(request, credentials):
            request.axes_lock = Lock.ACCOUNT_ADDRESS
        else:
            username = attempted_username(request, credentials)
            request.axes_lock = lock_beyond_the_pair(username, request.axes_ip_address)
        return bool(request.axes_lock)

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs):
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is None or request.axes_failures_since_start is None:
            return  # refused unchecked while locked (or no request): not counted
        if request.axes_locked_out:
            request.axes_lock = Lock.ACCOUNT_ADDRESS  # this failure reached axes' own limit
            return
        username = attempted_username(request, credentials)
        request.axes_lock = lock_beyond_the_pair(username, request.axes_ip_address)
        if request.axes_lock:  # this failure reached another layer's limit
            request.axes_locked_out = True
            request.axes_credentials = credentials
            user_locked_out.send(
                "axes", request=request, username=username, ip_address=request.axes_ip_address
            )


def retry_after_seconds(lock: str, username: str | None, ip_address: str | None) -> int:
    """Seconds until the newest counted failure under this lock lapses (for the address and
    account layers, whose counts roll, at most that)."""
    cooloff = settings.AXES_COOLOFF_TIME
    last = _counted(lock or Lock.ACCOUNT_ADDRESS, username, ip_address).aggregate(
        last=Max("attempt_time")
    )["last"]
    if last is None:
        return math.ceil(cooloff.total_seconds())
    remaining = (last + cooloff - timezone.now()).total_seconds()
    return max(1, math.ceil(remaining))


def lockout_message(seconds: int) -> str:
    return LOCKED_OUT_MESSAGE.format(minutes=max(1, math.ceil(seconds / 60)))


def lockout_response(request, original_response=None, credentials=None) -> HttpResponse:
    """axes' AXES_LOCKOUT_CALLABLE: the refusal of a sign-in while locked out."""
    seconds = retry_after_seconds(
        getattr(request, "axes_lock", ""),
        attempted_username(request, credentials),
        getattr(request, "axes_ip_address", None),
    )
    message = lockout_message(seconds)
    if request.path.startswith("/api/"):
        # here, not at the top: every process loads this module, workers need no DRF
        from bimride.api import error_body

        response = JsonResponse(error_body("locked_out", message), status=429)
    elif original_response is not None and original_response.get("Content-Type", "").startswith(
        "text/html"
    ):
        # The login form, re-rendered with its own error (bimride.access.forms says why).
        response = original_response
        response.status_code = 429
    else:
        response = HttpResponse(message, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response
