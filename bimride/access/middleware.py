"""Staff sessions end after STAFF_SESSION_IDLE without a request."""

from django.conf import settings
from django.contrib.auth import SESSION_KEY


class StaffSessionIdleMiddleware:
    """Each request of a staff session pushes its expiry STAFF_SESSION_IDLE ahead; a staff
    session left idle that long is gone. Other sessions keep SESSION_COOKIE_AGE."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        response = self.get_response(request)
        user = getattr(request, "user", None)
        # After the view: a sign-in or sign-out during the request is already reflected. Only a
        # signed-in session: a staff token's request must not write a session of its own.
        signed_in = SESSION_KEY in getattr(request, "session", {})
        if signed_in and user is not None and user.is_authenticated and user.is_staff:
            request.session.set_expiry(int(settings.STAFF_SESSION_IDLE.total_seconds()))
        return response
