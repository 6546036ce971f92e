"""Rider and driver accounts and their API tokens."""

from django.contrib.auth import authenticate, get_user_model, password_validation
from django.core.exceptions import ValidationError as DjangoValidationError
from django.db import transaction
from django.http import HttpRequest
from rest_framework.authtoken.models import Token

from bimride.access import audit, otp
from bimride.errors import ValidationError
from bimride.jobs import publish
from rides.events import AccountRegistered
from rides.models import Driver, Rider

User = get_user_model()


# --- accounts -----------------------------------------------------------------------------------
@transaction.atomic
def account_register(*, email: str, password: str, name: str, role: str) -> tuple[User, str]:
    """Create a rider or driver account and its API token; the welcome email follows as a job."""
    email = email.strip().lower()
    if User.objects.filter(username=email).exists():
        raise ValidationError(fields={"email": ["An account with this email already exists."]})
    user = User(username=email, email=email, first_name=name[:150])
    try:
        password_validation.validate_password(password, user)
    except DjangoValidationError as error:
        raise ValidationError(fields={"password": list(error.messages)}) from None
    user.set_password(password)
    user.save()
    profile = Rider if role == "rider" else Driver
    profile.objects.create(user=user, name=name)
    token = Token.objects.create(user=user)
    publish(AccountRegistered(user_id=user.pk))
    return user, token.key


def account_token(*, email: str, password: str, otp_token: str = "", request: HttpRequest) -> str:
    """The API token of the account with these credentials (and, for staff who need one, a
    second-factor code). `request` is the sign-in's: failures count towards its lockout."""
    username = email.strip().lower()
    user = authenticate(request, username=username, password=password)
    if user is None:
        raise ValidationError("Wrong email or password.", code="invalid_credentials")
    if otp.otp_required(user):
        if not otp.has_authenticator(user):
            raise ValidationError(
                "This staff account needs two-factor sign-in: enrol in the admin first.",
                code="otp_enrolment_required",
            )
        if not otp_token:
            raise ValidationError(
                "Staff accounts sign in with a second-factor code: send otp_token.",
                code="otp_required",
            )
        if otp.verify_code(user, otp_token) is None:
            audit.sign_in_failed(request, username, "otp")
            raise ValidationError("Wrong second-factor code.", code="invalid_otp")
    audit.sign_in_succeeded(request, user)
    token, _ = Token.objects.get_or_create(user=user)
    return token.key
