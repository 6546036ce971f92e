"""The staff payments API and the Stripe webhook endpoint."""

import logging

from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bimride.api import error_body, idempotent
from bimride.errors import NotFound
from payments import services
from payments.models import Payment
from payments.serializers import PaymentSerializer, RefundInput, RefundSerializer
from payments.stripe_client import WebhookSignatureInvalid

logger = logging.getLogger(__name__)


class PaymentDetailView(APIView):
    permission_classes = [IsAuthenticated, IsAdminUser]

    @extend_schema(responses=PaymentSerializer)
    def get(self, request: Request, payment_id: int) -> Response:
        payment = Payment.objects.filter(pk=payment_id).first()
        if payment is None:
            raise NotFound("No such payment.")
        return Response(PaymentSerializer(payment).data)


class PaymentRefundView(APIView):
    permission_classes = [IsAuthenticated, IsAdminUser]
    api_errors = {"post": ["not_refundable"]}

    @extend_schema(request=RefundInput, responses={202: RefundSerializer})
    @idempotent
    def post(self, request: Request, payment_id: int) -> Response:
        serializer = RefundInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        refund = services.refund_request(
            payment_id=payment_id,
            amount=serializer.validated_data.get("amount"),
            reason=serializer.validated_data["reason"],
            user=request.user,
        )
        return Response(RefundSerializer(refund).data, status=202)


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe's webhook: a verified event is stored once and processed by a job."""
    try:
        event = services.webhook_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except WebhookSignatureInvalid as error:
        logger.warning("stripe webhook refused: %s", error)
        return JsonResponse(
            error_body("invalid_signature", "The Stripe signature is missing or wrong."),
            status=400,
        )
    return JsonResponse({"received": True, "id": event.event_id})
