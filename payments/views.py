"""The staff payments API and the Stripe webhook endpoint."""

import logging

from django.conf import settings
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST
from drf_spectacular.utils import extend_schema
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bimride.api import error_body, idempotent
from payments import selectors, services
from payments.serializers import PaymentSerializer, RefundInput, RefundSerializer
from payments.stripe_client import WebhookSignatureInvalid

logger = logging.getLogger(__name__)


class PaymentDetailView(APIView):
    permission_classes = [IsAuthenticated, IsAdminUser]

    @extend_schema(responses=PaymentSerializer)
    def get(self, request: Request, payment_id: int) -> Response:
        return Response(PaymentSerializer(selectors.payment_get(payment_id=payment_id)).data)


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
        selectors.refund_jobs_attach([refund])
        return Response(RefundSerializer(refund).data, status=202)


STRIPE_WEBHOOK_SCHEMA = {
    "operationId": "webhooks_stripe",
    "summary": "Stripe's webhook (called by Stripe, not by apps)",
    "description": (
        "Stripe posts its events here, signed with STRIPE_WEBHOOK_SECRET. A verified event is "
        "stored once per event id and applied by a job (`payment_intent.succeeded`, "
        "`payment_intent.payment_failed`, `charge.refunded`, `charge.dispute.created`); a replay "
        "answers 200 and changes nothing."
    ),
    "security": [{}],
    "parameters": [
        {
            "name": "Stripe-Signature",
            "in": "header",
            "required": True,
            "schema": {"type": "string"},
            "description": "`t=<timestamp>,v1=<HMAC-SHA256 of the body>`, as Stripe signs it.",
        }
    ],
    "requestBody": {
        "required": True,
        "content": {"application/json": {"schema": {"type": "object"}}},
        "description": "A Stripe event object.",
    },
    "responses": {
        "200": {
            "description": "Received (first time or replay).",
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "properties": {"received": {"type": "boolean"}, "id": {"type": "string"}},
                        "required": ["received", "id"],
                    },
                    "example": {"received": True, "id": "evt_1QAbc"},
                }
            },
        },
        "401": {
            "description": (
                "Not authenticated. Codes: `invalid_signature`: the signature is missing, wrong "
                "or stale; `webhook_closed`: STRIPE_WEBHOOK_SECRET is not set, so nothing is "
                "accepted."
            ),
            "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
            "content": {
                "application/json": {
                    "schema": {"$ref": "#/components/schemas/Error"},
                    "example": error_body(
                        "invalid_signature", "The Stripe signature is missing or wrong."
                    ),
                }
            },
        },
        "503": {
            "description": "Service unavailable. Codes: `unavailable`: Stripe retries later.",
            "headers": {"Retry-After": {"schema": {"type": "integer"}, "required": True}},
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
        },
    },
}


@csrf_exempt
@require_POST
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    """Stripe's webhook: a verified event is stored once and processed by a job. Without
    STRIPE_WEBHOOK_SECRET nothing could be verified, so the webhook is closed."""
    if not settings.STRIPE_WEBHOOK_SECRET:
        logger.warning(
            "stripe webhook refused a request: "
            "it is closed because STRIPE_WEBHOOK_SECRET is not set"
        )
        message = "The webhook is closed: STRIPE_WEBHOOK_SECRET is not set."
        return _signature_challenge("webhook_closed", message)
    try:
        event = services.webhook_receive(
            payload=request.body, signature=request.headers.get("Stripe-Signature")
        )
    except WebhookSignatureInvalid as error:
        logger.warning("stripe webhook refused: %s", error)
        return _signature_challenge(
            "invalid_signature", "The Stripe signature is missing or wrong."
        )
    return JsonResponse({"received": True, "id": event.event_id})


def _signature_challenge(code: str, message: str) -> JsonResponse:
    """401: the credential of a Stripe webhook is its `Stripe-Signature` header."""
    response = JsonResponse(error_body(code, message), status=401)
    response["WWW-Authenticate"] = 'Stripe-Signature realm="BimRide webhooks"'
    return response


stripe_webhook.webhook_schema = STRIPE_WEBHOOK_SCHEMA
