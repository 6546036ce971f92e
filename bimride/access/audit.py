"""The sign-in audit, fed by Django's sign-in signals: every staff sign-in, every failure at a
staff way in or against a staff account, every lockout whoever it hits, and every lockout staff
lift, with who, when, from where and which layer. A success also remembers the address the
account signed in from (KnownAddress)."""

import logging
from datetime import timedelta

from axes.utils import reset as axes_reset
from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_in, user_login_failed
from django.utils import timezone

from bimride.access.lockout import attempted_username, client_ip
from bimride.access.models import KnownAddress, SignInEvent

logger = logging.getLogger(__name__)


def connect() -> None:
    # Connected after axes' receivers (INSTALLED_APPS order): a failure already carries axes'
    # verdict in `request.axes_locked_out`.
    user_logged_in.connect(_on_logged_in, dispatch_uid="access.audit.logged_in")
    user_login_failed.connect(_on_login_failed, dispatch_uid="access.audit.login_failed")


def sign_in_succeeded(request, user) -> None:
    """Forget the account's failures from this address; record the sign-in if it is staff's.

    Failures at this account from other addresses, and this address's failures at other
    accounts, still count: a success must not wipe what someone else guessed. Called for every
    successful sign-in: by Django's `user_logged_in` for the forms, and by the token endpoint,
    which opens no session."""
    ip = getattr(request, "axes_ip_address", None) or client_ip(request)
    axes_reset(ip=ip, username=user.get_username())
    _remember_address(user, ip)
    if user.is_staff:
        _record(request, SignInEvent.Kind.SUCCESS, user.get_username(), user=user)


def _remember_address(user, ip: str | None) -> None:
    """This address is known for the account now; those unused for LOGIN_KNOWN_ADDRESS_DAYS
    are forgotten."""
    if not ip:
        return
    now = timezone.now()
    known = KnownAddress.objects.filter(user=user)
    known.filter(
        last_signed_in_at__lt=now - timedelta(days=settings.LOGIN_KNOWN_ADDRESS_DAYS)
    ).delete()
    KnownAddress.objects.bulk_create(
        [KnownAddress(user=user, ip_address=ip, last_signed_in_at=now)],
        update_conflicts=True,
        unique_fields=["user", "ip_address"],
        update_fields=["last_signed_in_at"],
    )


def lockout_lifted(*, by, username: str | None, ip_address: str | None, failures: int) -> None:
    """Record that staff user `by` forgot these counted failures."""
    user = get_user_model().objects.filter(username=username).first() if username else None
    SignInEvent.objects.create(
        kind=SignInEvent.Kind.UNLOCKED,
        username=(username or "")[:255],
        user=user,
        ip_address=ip_address,
        path="admin",
        reason=f"lifted {failures} failures"[:64],
        by=by,
    )
    logger.info("lockout lifted by %s: %s from %s", by.get_username(), username, ip_address)


def sign_in_failed(request, username: str, reason: str) -> None:
    """Count a failed second factor like a wrong password: axes locks out, the audit records."""
    user_login_failed.send(
        sender=__name__, credentials={"username": username}, request=request, reason=reason
    )


def _on_logged_in(sender, request, user, **kwargs) -> None:
    if request is not None:
        sign_in_succeeded(request, user)


def _on_login_failed(sender, credentials, request=None, reason="password", **kwargs) -> None:
    if request is None:
        return
    username = attempted_username(request, credentials) or ""
    locked = bool(getattr(request, "axes_locked_out", False))
    user = get_user_model().objects.filter(username=username).first()
    staff_way_in = not request.path.startswith("/api/")
    if not (locked or staff_way_in or (user is not None and user.is_staff)):
        return  # a rider's or driver's mistyped password: counted by axes, not audited here
    # axes counts a failure (and sets this) unless it refused the attempt unchecked
    counted = getattr(request, "axes_failures_since_start", None) is not None
    kind = SignInEvent.Kind.LOCKED_OUT if locked else SignInEvent.Kind.FAILURE
    lock = getattr(request, "axes_lock", "") if locked else ""
    _record(request, kind, username, user=user, reason=reason if counted else "locked", lock=lock)


def _record(
    request, kind: str, username: str, *, user=None, reason: str = "", lock: str = ""
) -> None:
    ip = getattr(request, "axes_ip_address", None) or client_ip(request)
    SignInEvent.objects.create(
        kind=kind,
        username=username[:255],
        user=user,
        ip_address=ip,
        user_agent=request.META.get("HTTP_USER_AGENT", "")[:255],
        path=request.path[:255],
        reason=reason,
        lock=lock or "",
    )
    logger.info(
        "sign-in %s%s: %s from %s at %s",
        kind,
        f" ({lock})" if lock else "",
        username,
        ip,
        request.path,
    )
