"""The second factor: TOTP devices (an authenticator app) and recovery codes (django-otp's
static tokens), their enrolment, and the rule of who must use them."""

import io

from django.conf import settings
from django.db import transaction
from django_otp import devices_for_user
from django_otp.plugins.otp_static.models import StaticDevice, StaticToken
from django_otp.plugins.otp_totp.models import TOTPDevice

RECOVERY_CODES = 10
AUTHENTICATOR = "authenticator"
RECOVERY = "recovery codes"


def has_authenticator(user) -> bool:
    return TOTPDevice.objects.devices_for_user(user, confirmed=True).exists()


def otp_required(user) -> bool:
    """Staff give a code when production requires it, or when they enrolled a device."""
    return bool(user.is_staff) and (settings.STAFF_OTP_REQUIRED or has_authenticator(user))


def verify_code(user, code: str):
    """The confirmed device that accepts `code` (6 digits: the app; else a recovery code).

    Each kind of code is tried only against its kind of device, so a code never counts as a
    failure against a device it was not meant for (django-otp throttles a device per failure).
    """
    code = "".join(code.split()).lower()
    if not code:
        return None
    kind = TOTPDevice if code.isdigit() and len(code) == 6 else StaticDevice
    for device in devices_for_user(user, confirmed=True):
        if isinstance(device, kind) and device.verify_token(code):
            return device
    return None


def enrol_start(user) -> TOTPDevice:
    """The user's pending authenticator: unconfirmed until a code from it is entered."""
    device = TOTPDevice.objects.filter(user=user, confirmed=False, name=AUTHENTICATOR).first()
    return device or TOTPDevice.objects.create(user=user, name=AUTHENTICATOR, confirmed=False)


@transaction.atomic
def enrol_confirm(user, code: str) -> tuple[TOTPDevice, list[str]] | None:
    """Confirm the pending authenticator with a code from it; new recovery codes with it."""
    device = (
        TOTPDevice.objects.select_for_update()
        .filter(user=user, confirmed=False, name=AUTHENTICATOR)
        .first()
    )
    if device is None or not device.verify_token("".join(code.split())):
        return None
    TOTPDevice.objects.filter(user=user, confirmed=True).delete()  # one authenticator each
    device.confirmed = True
    device.save(update_fields=["confirmed"])
    return device, recovery_codes_renew(user)


@transaction.atomic
def recovery_codes_renew(user) -> list[str]:
    """Replace the user's recovery codes with RECOVERY_CODES new ones, each usable once."""
    device, _ = StaticDevice.objects.get_or_create(
        user=user, name=RECOVERY, defaults={"confirmed": True}
    )
    device.token_set.all().delete()
    codes = [StaticToken.random_token() for _ in range(RECOVERY_CODES)]
    StaticToken.objects.bulk_create(StaticToken(device=device, token=code) for code in codes)
    return codes


def recovery_codes_left(user) -> int:
    return StaticToken.objects.filter(device__user=user, device__confirmed=True).count()


def qr_svg(device: TOTPDevice) -> str:
    """The device's otpauth:// URL as an inline SVG QR code for an authenticator app."""
    import qrcode  # here: only the enrolment page draws one
    import qrcode.image.svg

    image = qrcode.make(device.config_url, image_factory=qrcode.image.svg.SvgPathImage)
    buffer = io.BytesIO()
    image.save(buffer)
    return buffer.getvalue().decode()
