from django.urls import path

from payments import views

urlpatterns = [
    path("webhooks/stripe", views.stripe_webhook, name="stripe-webhook"),
    path("api/payments/<id:payment_id>", views.PaymentDetailView.as_view(), name="payment"),
    path(
        "api/payments/<id:payment_id>/refunds",
        views.PaymentRefundView.as_view(),
        name="payment-refunds",
    ),
]
