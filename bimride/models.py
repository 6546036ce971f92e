"""Project-wide tables: idempotent API requests."""

from django.conf import settings
from django.db import models


class IdempotentRequest(models.Model):
    """The first response to a write carrying an `Idempotency-Key`, replayed for repeats."""

    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, on_delete=models.CASCADE)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64)  # method, path and body of the first request
    status_code = models.PositiveSmallIntegerField(null=True)
    body = models.JSONField(null=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["user", "key"], name="idempotent_request_unique_key", nulls_distinct=False
            )
        ]

    def __str__(self) -> str:
        return f"{self.key} ({self.status_code})"
