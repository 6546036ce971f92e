"""The devices and preferences API, mounted under /api/."""

from django.urls import path

from notifications import views

urlpatterns = [
    path("devices", views.DeviceListCreateView.as_view(), name="device-list"),
    path("devices/<id:device_id>", views.DeviceDetailView.as_view(), name="device-detail"),
    path("me/notifications", views.NotificationPreferencesView.as_view(), name="me-notifications"),
]
