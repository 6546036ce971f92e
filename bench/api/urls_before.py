"""The URLs of `bench.api.settings_before`: the product's, with a completion that mails the receipt
synchronously (the seeds' "before"), to measure what moving it to a job bought."""

from django.urls import path
from rest_framework.request import Request
from rest_framework.response import Response

from bimride.urls import handler400, handler403, handler404, handler500  # noqa: F401
from bimride.urls import urlpatterns as product_urlpatterns
from notifications import emails
from rides.views import RideCompleteView


class RideCompleteSendingReceiptView(RideCompleteView):
    """Complete the ride, then send its receipt to the provider and wait for it to accept."""

    def post(self, request: Request, ride_id: int) -> Response:
        response = super().post(request, ride_id)
        if response.status_code == 200:
            emails.message_for(emails.receipt(ride_id=ride_id)).send()
        return response


urlpatterns = [
    path("api/rides/<int:ride_id>/complete", RideCompleteSendingReceiptView.as_view()),
    *product_urlpatterns,
]
