from django.urls import path

from rides import views

urlpatterns = [
    path("auth/register", views.AuthRegisterView.as_view(), name="auth-register"),
    path("auth/token", views.AuthTokenView.as_view(), name="auth-token"),
    path("rides", views.RideListCreateView.as_view(), name="ride-list"),
    path("rides/<id:ride_id>", views.RideDetailView.as_view(), name="ride-detail"),
    path("rides/<id:ride_id>/accept", views.RideAcceptView.as_view(), name="ride-accept"),
    path("rides/<id:ride_id>/start", views.RideStartView.as_view(), name="ride-start"),
    path("rides/<id:ride_id>/complete", views.RideCompleteView.as_view(), name="ride-complete"),
    path("rides/<id:ride_id>/cancel", views.RideCancelView.as_view(), name="ride-cancel"),
    path("drivers/me/availability", views.DriverAvailabilityView.as_view(), name="availability"),
    path("drivers/me/location", views.DriverLocationView.as_view(), name="driver-location"),
    path("drivers/me/offers", views.DriverOffersView.as_view(), name="driver-offers"),
]
