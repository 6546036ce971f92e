"""The devices and notification preferences API: permission, validation, one service or
selector call. Every signed-in user (rider, driver, staff) has their own devices."""

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from bimride.api import idempotent
from notifications import pushes, selectors
from notifications.serializers import (
    DeviceInput,
    DeviceSerializer,
    PreferencesInput,
    PreferencesSerializer,
)


class DeviceListCreateView(ListAPIView):
    """Register this app install's push token (POST), or list the user's active devices."""

    permission_classes = [IsAuthenticated]
    serializer_class = DeviceSerializer

    def get_queryset(self):
        return selectors.device_list_for(user=self.request.user)

    @extend_schema(request=DeviceInput, responses={200: DeviceSerializer, 201: DeviceSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        """201 for a new device; 200 when the token was registered before (by this or another
        account): it moves to the signed-in user and is active again."""
        serializer = DeviceInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        device, created = pushes.device_register(user=request.user, **serializer.validated_data)
        return Response(DeviceSerializer(device).data, status=201 if created else 200)


class DeviceDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses={204: None})
    def delete(self, request: Request, device_id: int) -> Response:
        """Stop pushes to one of the user's devices (another user's answers 404)."""
        pushes.device_delete(user=request.user, device_id=device_id)
        return Response(status=204)


class NotificationPreferencesView(APIView):
    """Per kind, whether the user hears it by push and by email (on unless turned off)."""

    permission_classes = [IsAuthenticated]

    @extend_schema(responses=PreferencesSerializer)
    def get(self, request: Request) -> Response:
        preferences = selectors.preferences_for(user=request.user)
        return Response(PreferencesSerializer({"preferences": preferences}).data)

    @extend_schema(request=PreferencesInput, responses=PreferencesSerializer)
    def patch(self, request: Request) -> Response:
        serializer = PreferencesInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        preferences = pushes.preferences_update(
            user=request.user, changes=serializer.validated_data["preferences"]
        )
        return Response(PreferencesSerializer({"preferences": preferences}).data)
