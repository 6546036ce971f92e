"""The audit of sign-ins: who, when, from which address, and how it ended."""

from django.conf import settings
from django.db import models


class SignInEvent(models.Model):
    """One sign-in attempt by staff or at a staff way in; written by signal receivers only."""

    class Kind(models.TextChoices):
        SUCCESS = "success"
        FAILURE = "failure"  # wrong password or second-factor code
        LOCKED_OUT = "locked_out"  # refused: the account or the address is locked out

    at = models.DateTimeField(auto_now_add=True, db_index=True)
    kind = models.CharField(max_length=16, choices=Kind.choices)
    username = models.CharField(max_length=255, db_index=True)
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    ip_address = models.GenericIPAddressField(null=True, db_index=True)
    user_agent = models.CharField(max_length=255, blank=True)
    path = models.CharField(max_length=255)  # the way in: /admin/login/, /api/auth/token, ...
    reason = models.CharField(max_length=64, blank=True)  # password, otp, locked

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["kind", "-at"], name="signin_kind_at")]

    def __str__(self) -> str:
        return f"{self.kind} {self.username} from {self.ip_address} at {self.at:%Y-%m-%d %H:%M:%S}"
