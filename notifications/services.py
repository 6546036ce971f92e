"""Outgoing email. Each message is rendered from templates/notifications/<name>.{txt,html}."""

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.mail import EmailMultiAlternatives
from django.template.loader import render_to_string

from rides.models import Ride
from rides.services import ride_set_receipt_status

User = get_user_model()


def _send(*, to: str, template: str, subject: str, context: dict) -> None:
    message = EmailMultiAlternatives(
        subject=subject,
        body=render_to_string(f"notifications/{template}.txt", context),
        from_email=settings.DEFAULT_FROM_EMAIL,
        to=[to],
    )
    message.attach_alternative(
        render_to_string(f"notifications/{template}.html", context), "text/html"
    )
    message.send()


def welcome_send(*, user_id: int) -> None:
    """Send the welcome email to a new account."""
    user = User.objects.get(pk=user_id)
    _send(
        to=user.email,
        template="welcome",
        subject="Welcome to BimRide",
        context={"name": user.first_name},
    )


def receipt_send(*, ride_id: int) -> str:
    """Send the receipt of a completed ride and mark it sent."""
    ride = Ride.objects.select_related("rider__user", "driver").get(pk=ride_id)
    if ride.receipt_status != Ride.ReceiptStatus.PENDING:
        return ride.receipt_status  # already sent by an earlier attempt
    _send(
        to=ride.rider.user.email,
        template="receipt",
        subject=f"Your BimRide receipt, ride {ride.pk}",
        context={"ride": ride, "name": ride.rider.name, "fare": f"{ride.fare_amount / 100:.2f}"},
    )
    ride_set_receipt_status(ride_id=ride.pk, status=Ride.ReceiptStatus.SENT)
    return Ride.ReceiptStatus.SENT
