from django.contrib import admin
from django.contrib.auth.views import LogoutView
from django.http import JsonResponse
from django.urls import include, path, register_converter
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

import bimride.access.schema  # noqa: F401 - describes our session authentication in the schema
from bimride import health
from bimride.access.views import ApiLoginView
from bimride.api import IdConverter, error_body
from bimride.jobs.ops.health import readyz
from bimride.jobs.ops.views import MetricsView

register_converter(IdConverter, "id")  # before the apps' URLs, which use it

# The browsable API's session sign-in: the same lockout and second factor as the admin's.
api_auth = [
    path("login/", ApiLoginView.as_view(), name="login"),
    path("logout/", LogoutView.as_view(), name="logout"),
]

urlpatterns = [
    path("admin/", admin.site.urls),
    path("api-auth/", include((api_auth, "rest_framework"))),
    path("api/", include("rides.urls")),
    path("api/", include("bimride.jobs.ops.urls")),
    path("api/", include("notifications.api_urls")),
    path("api/schema/", SpectacularAPIView.as_view(), name="schema"),
    path("api/docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
    path("webhooks/anymail/", include("notifications.urls")),
    path("", include("payments.urls")),  # /webhooks/stripe and /api/payments/...
    path("metrics", MetricsView.as_view(), name="metrics"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", readyz, name="readyz"),
]


def _json_error(status: int, code: str, message: str):
    def view(request, exception=None):
        return JsonResponse(error_body(code, message), status=status)

    return view


handler400 = _json_error(400, "bad_request", "The request could not be understood.")
handler403 = _json_error(403, "permission_denied", "You do not have permission to do this.")
handler404 = _json_error(404, "not_found", "Not found.")
handler500 = _json_error(500, "server_error", "Something went wrong on our side.")
