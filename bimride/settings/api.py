"""The REST API: Django REST framework (authentication, throttles, errors, pagination) and its
OpenAPI schema (drf-spectacular)."""

from bimride.settings.env import env

# Request bodies: the API takes small JSON documents.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("MAX_BODY_BYTES", 64 * 1024)

REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "bimride.authentication.TokenAuthentication",
        "bimride.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "DEFAULT_PAGINATION_CLASS": "bimride.api.Pagination",
    "PAGE_SIZE": 20,
    "TEST_REQUEST_DEFAULT_FORMAT": "json",
    "EXCEPTION_HANDLER": "bimride.api.exception_handler",
    "DEFAULT_SCHEMA_CLASS": "bimride.schema.AutoSchema",  # documents every error answer
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.AnonRateThrottle",
        "rest_framework.throttling.UserRateThrottle",
    ],
    "DEFAULT_THROTTLE_RATES": {
        "anon": env.str("THROTTLE_ANON", "60/min"),
        "user": env.str("THROTTLE_USER", "6000/min"),
        "auth": env.str("THROTTLE_AUTH", "20/min"),
        "ride_create": env.str("THROTTLE_RIDE_CREATE", "30/min"),
    },
}
SPECTACULAR_SETTINGS = {
    "SWAGGER_UI_DIST": "SIDECAR",  # served locally: the docs work offline
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "TITLE": "BimRide API",
    "DESCRIPTION": (
        "Riders request rides, drivers take them; slow work runs in background jobs.\n\n"
        'Every error has one shape, `{"error": {"code", "message", "fields"}}`; each '
        "operation lists the statuses it can answer and, for each, its codes. 429 and 503 carry "
        "`Retry-After`. Query parameters an operation lists are validated (a value out of range "
        "answers 400 `invalid` naming it in `fields`); any other query parameter is ignored.\n\n"
        "Under `/api/` every answer is JSON, whatever the server's DEBUG setting: a path no "
        "operation has, or an id in a path that is not a whole number of 1 to 18 digits "
        "(`/api/rides/abc`), answers 404 `not_found`; a method an operation does not list "
        "answers 405 `method_not_allowed` with `Allow` naming the methods it has (after 401 or "
        "403 when the caller may not use the path at all); a body that is not JSON answers 415 "
        "`unsupported_media_type`, JSON that cannot be read 400 `parse_error`."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # bimride.schema: the error answers come from its AutoSchema; links and webhooks from here
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "bimride.schema.postprocess",
    ],
    # `<id:…>` in a path (bimride.api.IdConverter): digits only, within the id column
    "PATH_CONVERTER_OVERRIDES": {
        "id": {"type": "integer", "minimum": 0, "maximum": 10**18 - 1},
    },
    "TAGS": [
        {"name": "webhooks", "description": "Called by Stripe and the email provider, not by apps."}
    ],
    # named, where a field name alone ("kind") would give the enum a hashed name
    "ENUM_NAME_OVERRIDES": {"NotificationKindEnum": "notifications.models.Kind"},
}
