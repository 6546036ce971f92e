"""The errors services raise. The API renders them; the job runner treats them as permanent."""


class BimRideError(Exception):
    """A request the product refuses, with a stable `code` and an HTTP `status`."""

    status = 400
    code = "bad_request"
    message = "The request cannot be processed."

    def __init__(self, message: str | None = None, *, code: str | None = None, fields=None):
        self.message = message or self.message
        self.code = code or self.code
        self.fields = fields or {}
        super().__init__(self.message)


class ValidationError(BimRideError):
    code = "invalid"
    message = "Invalid input."


class PermissionDenied(BimRideError):
    status = 403
    code = "permission_denied"
    message = "You do not have permission to do this."


class NotFound(BimRideError):
    status = 404
    code = "not_found"
    message = "Not found."


class Conflict(BimRideError):
    status = 409
    code = "conflict"
    message = "The request conflicts with the current state."


class InvalidTransition(Conflict):
    code = "invalid_transition"

    def __init__(self, current: str, target: str):
        super().__init__(f"A ride that is {current} cannot become {target}.")
        self.current, self.target = current, target


class PermanentError(BimRideError):
    """A job failure that retrying cannot fix (card declined, address rejected): dead-letter now."""

    code = "permanent_failure"
