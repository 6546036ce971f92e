"""What django-axes keys on (the attempted account, the client's address) and how a locked-out
sign-in is answered: 429 with `Retry-After`, in the API's error shape under /api/, on the login
form elsewhere."""

import math

from axes.models import AccessAttempt
from django.conf import settings
from django.db.models import Max, Q
from django.http import HttpResponse, JsonResponse
from django.utils import timezone

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


def retry_after_seconds(username: str | None, ip_address: str | None) -> int:
    """Seconds until the newest counted failure of this account or address lapses."""
    cooloff = settings.AXES_COOLOFF_TIME
    last = AccessAttempt.objects.filter(Q(username=username) | Q(ip_address=ip_address)).aggregate(
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
        attempted_username(request, credentials), getattr(request, "axes_ip_address", None)
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
