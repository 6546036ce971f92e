from rest_framework.permissions import BasePermission


class IsRider(BasePermission):
    message = "Only riders can do this."

    def has_permission(self, request, view) -> bool:
        return bool(
            request.user and request.user.is_authenticated and hasattr(request.user, "rider")
        )


class IsDriver(BasePermission):
    message = "Only drivers can do this."

    def has_permission(self, request, view) -> bool:
        return bool(
            request.user and request.user.is_authenticated and hasattr(request.user, "driver")
        )
