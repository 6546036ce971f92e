"""The job API: a job's status for its owner, and the staff-only ops endpoints."""

import hmac
from uuid import UUID

from django.conf import settings
from django.http import HttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema
from prometheus_client import CONTENT_TYPE_LATEST
from rest_framework.generics import ListAPIView
from rest_framework.permissions import BasePermission, IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bimride.api import query_choice
from bimride.jobs.ops import examples, scrape, selectors, services
from bimride.jobs.ops.serializers import (
    DeadLetterDiscardInput,
    DeadLetterRetryInput,
    DeadLetterSerializer,
    JobSerializer,
    QueueStatsSerializer,
)


class JobDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=JobSerializer, examples=examples.JOB_STATUS)
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get_for(user=request.user, job_id=job_id)
        return Response(JobSerializer(job).data)


class JobByUidView(APIView):
    """A job by its opaque id (`uid`): the result id of a task of Django's Tasks API."""

    permission_classes = [IsAuthenticated]

    @extend_schema(
        operation_id="api_jobs_by_uid_retrieve",
        responses=JobSerializer,
        examples=examples.JOB_STATUS,
    )
    def get(self, request: Request, job_uid: UUID) -> Response:
        job = selectors.job_get_for(user=request.user, job_uid=job_uid)
        return Response(JobSerializer(job).data)


class QueuesView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=QueueStatsSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(QueueStatsSerializer(selectors.queue_stats(), many=True).data)


DEAD_LETTER_STATUSES = ["open", "resolved", "all"]


class DeadLetterListView(ListAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = DeadLetterSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter(
                "status",
                enum=DEAD_LETTER_STATUSES,
                default="open",
                description="Open (neither retried nor discarded), resolved, or all.",
            )
        ],
        examples=examples.DEAD_LETTERS,
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        status = query_choice(self.request, "status", choices=DEAD_LETTER_STATUSES, default="open")
        return selectors.deadletter_list(status=status)


class DeadLetterRetryView(APIView):
    permission_classes = [IsAdminUser]
    api_errors = {"post": ["already_resolved"]}

    @extend_schema(
        request=DeadLetterRetryInput, responses={201: JobSerializer}, examples=examples.RETRY
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        serializer = DeadLetterRetryInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        job = services.deadletter_retry(
            dead_letter_id=dead_letter_id,
            user=request.user,
            payload=serializer.validated_data.get("payload"),
            note=serializer.validated_data["note"],
        )
        return Response(JobSerializer(job).data, status=201)


class DeadLetterDiscardView(APIView):
    permission_classes = [IsAdminUser]
    api_errors = {"post": ["already_resolved"]}

    @extend_schema(
        request=DeadLetterDiscardInput, responses=DeadLetterSerializer, examples=examples.DISCARD
    )
    def post(self, request: Request, dead_letter_id: int) -> Response:
        serializer = DeadLetterDiscardInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        dead_letter = services.deadletter_discard(
            dead_letter_id=dead_letter_id, user=request.user, **serializer.validated_data
        )
        return Response(DeadLetterSerializer(dead_letter).data)


class IsStaffOrScrapeToken(BasePermission):
    """Staff (any authentication), or `Authorization: Bearer $METRICS_TOKEN` for Prometheus."""

    def has_permission(self, request, view) -> bool:
        token = settings.METRICS_TOKEN
        bearer = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if token and hmac.compare_digest(bearer.encode(), token.encode()):
            return True
        return bool(request.user and request.user.is_staff)


class MetricsView(APIView):
    """Prometheus scrape endpoint (text exposition format)."""

    permission_classes = [IsStaffOrScrapeToken]

    @extend_schema(exclude=True)
    def get(self, request: Request) -> HttpResponse:
        return HttpResponse(scrape.render(), content_type=CONTENT_TYPE_LATEST)
