"""The OpenAPI schema names our session authentication as DRF's (cookie `sessionid`)."""

from drf_spectacular.authentication import SessionScheme


class StaffSessionScheme(SessionScheme):
    target_class = "bimride.authentication.SessionAuthentication"
