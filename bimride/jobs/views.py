"""The job API: a job's status for its owner, and the staff-only ops endpoints."""

from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAdminUser, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bimride.jobs import selectors, services
from bimride.jobs.serializers import (
    DeadLetterDiscardInput,
    DeadLetterRetryInput,
    DeadLetterSerializer,
    JobSerializer,
    QueueStatsSerializer,
)


class JobDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=JobSerializer)
    def get(self, request: Request, job_id: int) -> Response:
        job = selectors.job_get_for(user=request.user, job_id=job_id)
        return Response(JobSerializer(job).data)


class QueuesView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(responses=QueueStatsSerializer(many=True))
    def get(self, request: Request) -> Response:
        return Response(QueueStatsSerializer(selectors.queue_stats(), many=True).data)


class DeadLetterListView(ListAPIView):
    permission_classes = [IsAdminUser]
    serializer_class = DeadLetterSerializer

    @extend_schema(
        parameters=[OpenApiParameter("status", enum=["open", "resolved", "all"], default="open")]
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        status = self.request.query_params.get("status", "open")
        return selectors.deadletter_list(status=status if status in ("resolved", "all") else "open")


class DeadLetterRetryView(APIView):
    permission_classes = [IsAdminUser]

    @extend_schema(request=DeadLetterRetryInput, responses={201: JobSerializer})
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

    @extend_schema(request=DeadLetterDiscardInput, responses=DeadLetterSerializer)
    def post(self, request: Request, dead_letter_id: int) -> Response:
        serializer = DeadLetterDiscardInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        dead_letter = services.deadletter_discard(
            dead_letter_id=dead_letter_id, user=request.user, **serializer.validated_data
        )
        return Response(DeadLetterSerializer(dead_letter).data)
