"""The audit of sign-ins and lockouts: who, when, from which address, and how it ended; and
the addresses each account last signed in from."""

from django.conf import settings
from django.db import models


class SignInEvent(models.Model):
    """One sign-in attempt by staff or at a staff way in, every lockout (whoever it hits) and
    every lockout staff lifted; written by signal receivers and the admin's lift action only."""

    class Kind(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"  # wrong password or second-factor code
        LOCKED_OUT = "locked_out"  # the failure that locked, or a sign-in refused while locked
        UNLOCKED = "unlocked"  # staff lifted the counted failures (`by`)

    class Lock(models.TextChoices):
        """Which limit refused the sign-in (bimride.access.lockout)."""

        NONE = "", "-"
        ACCOUNT_ADDRESS = "account_address", "account from this address"
        ADDRESS = "address", "address, any accounts"
        ACCOUNT = "account", "account, any addresses"

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    username = models.CharField(max_length=255, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, db_index=True)
    user_agent = models.CharField(max_length=255, blank=True)
    path = models.CharField(max_length=255)  # the way in: /admin/login/, /api/auth/token, ...
    reason = models.CharField(max_length=64, blank=True)  # password, otp, locked, lifted
    lock = models.CharField(max_length=16, choices=Lock.choices, blank=True, default="")
    by = models.ForeignKey(  # the staff user who lifted a lockout
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["kind", "-at"], name="signin_kind_at")]

    def __str__(self) -> str:
        return f"{self.kind} {self.username} from {self.ip_address} at {self.at:%Y-%m-%d %H:%M:%S}"


class KnownAddress(models.Model):
    """An address the account signed in from successfully, within LOGIN_KNOWN_ADDRESS_DAYS: its
    owner gets past the account's slowdown from there (bimride.access.lockout)."""

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="known_addresses"
    )
    ip_address = models.GenericIPAddressField()
    last_signed_in_at = models.DateTimeField()

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["user", "ip_address"], name="known_address_once")
        ]

    def __str__(self) -> str:
        return f"{self.ip_address} for user {self.user_id}"
