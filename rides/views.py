"""The accounts, rides and drivers API: permission, validation, one service or selector call."""

from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.throttling import ScopedRateThrottle
from rest_framework.views import APIView

from bimride.api import idempotent
from rides import examples, selectors, services
from rides.permissions import IsDriver, IsRider
from rides.serializers import (
    AccountSerializer,
    AvailabilityInput,
    PointSerializer,
    RegisterInput,
    RideCancelInput,
    RideCompleteInput,
    RideRequestInput,
    RideSerializer,
    TokenInput,
    TokenSerializer,
    ride_bodies,
    ride_body,
)


class AuthRegisterView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"

    @extend_schema(request=RegisterInput, responses={201: AccountSerializer})
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = RegisterInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        user, token = services.account_register(**serializer.validated_data)
        data = {**serializer.validated_data, "id": user.pk, "email": user.email, "token": token}
        return Response(AccountSerializer(data).data, status=201)


class AuthTokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes = []
    throttle_classes = [ScopedRateThrottle]
    throttle_scope = "auth"
    api_errors = {
        "post": [
            "invalid_credentials",
            "otp_required",
            "otp_enrolment_required",
            "invalid_otp",
            "locked_out",
        ]
    }

    @extend_schema(request=TokenInput, responses=TokenSerializer)
    def post(self, request: Request) -> Response:
        serializer = TokenInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        # Django's request: axes marks a locked-out sign-in on it for its middleware's 429.
        token = services.account_token(**serializer.validated_data, request=request._request)
        return Response({"token": token})


# A page of rides, their bodies built with all their jobs read in one query.
class RideListView(ListAPIView):
    serializer_class = RideSerializer

    def list(self, request: Request, *args, **kwargs) -> Response:
        return self.get_paginated_response(
            ride_bodies(self.paginate_queryset(self.get_queryset()), viewer=request.user)
        )


class RideListCreateView(RideListView):
    throttle_scope = "ride_create"
    api_errors = {"post": ["invalid_promo_code", "ride_in_progress"]}

    def get_permissions(self):
        return (
            [IsAuthenticated(), IsRider()] if self.request.method == "POST" else [IsAuthenticated()]
        )

    def get_throttles(self):
        throttles = super().get_throttles()
        return [*throttles, ScopedRateThrottle()] if self.request.method == "POST" else throttles

    def get_queryset(self):
        return selectors.ride_list_for(user=self.request.user)

    @extend_schema(
        request=RideRequestInput, responses={201: RideSerializer}, examples=examples.REQUEST
    )
    @idempotent
    def post(self, request: Request) -> Response:
        serializer = RideRequestInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        ride = services.ride_request(rider=request.user.rider, **serializer.validated_data)
        return Response(ride_body(ride, viewer=request.user), status=201)


class RideDetailView(APIView):
    permission_classes = [IsAuthenticated]

    @extend_schema(responses=RideSerializer, examples=examples.DETAIL)
    def get(self, request: Request, ride_id: int) -> Response:
        ride = selectors.ride_get_for(user=request.user, ride_id=ride_id)
        return Response(ride_body(ride, viewer=request.user))


class RideAcceptView(APIView):
    permission_classes = [IsAuthenticated, IsDriver]
    api_errors = {"post": ["invalid_transition", "driver_unavailable", "driver_busy"]}

    @extend_schema(request=None, responses=RideSerializer, examples=examples.ACCEPTED)
    def post(self, request: Request, ride_id: int) -> Response:
        ride = services.ride_accept(ride_id=ride_id, driver=request.user.driver)
        return Response(ride_body(ride, viewer=request.user))


class RideStartView(APIView):
    permission_classes = [IsAuthenticated, IsDriver]
    api_errors = {"post": ["invalid_transition"]}

    @extend_schema(request=None, responses=RideSerializer, examples=examples.STARTED)
    def post(self, request: Request, ride_id: int) -> Response:
        ride = services.ride_start(ride_id=ride_id, driver=request.user.driver)
        return Response(ride_body(ride, viewer=request.user))


class RideCompleteView(APIView):
    permission_classes = [IsAuthenticated, IsDriver]
    api_errors = {"post": ["invalid_transition"]}

    @extend_schema(request=RideCompleteInput, responses=RideSerializer, examples=examples.COMPLETE)
    def post(self, request: Request, ride_id: int) -> Response:
        serializer = RideCompleteInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        ride = services.ride_complete(
            ride_id=ride_id, driver=request.user.driver, **serializer.validated_data
        )
        return Response(ride_body(ride, viewer=request.user))


class RideCancelView(APIView):
    permission_classes = [IsAuthenticated]
    api_errors = {"post": ["permission_denied", "invalid_transition"]}

    @extend_schema(request=RideCancelInput, responses=RideSerializer, examples=examples.CANCEL)
    def post(self, request: Request, ride_id: int) -> Response:
        serializer = RideCancelInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        selectors.ride_get_for(user=request.user, ride_id=ride_id)
        ride = services.ride_cancel(ride_id=ride_id, user=request.user, **serializer.validated_data)
        return Response(ride_body(ride, viewer=request.user))


class DriverAvailabilityView(APIView):
    permission_classes = [IsAuthenticated, IsDriver]

    @extend_schema(request=AvailabilityInput, responses=AvailabilityInput)
    def post(self, request: Request) -> Response:
        serializer = AvailabilityInput(data=request.data)
        serializer.is_valid(raise_exception=True)
        driver = services.driver_set_availability(
            driver=request.user.driver, **serializer.validated_data
        )
        return Response({"available": driver.available})


class DriverLocationView(APIView):
    permission_classes = [IsAuthenticated, IsDriver]

    @extend_schema(request=PointSerializer, responses={202: None})
    def post(self, request: Request) -> Response:
        serializer = PointSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        services.driver_update_location(driver=request.user.driver, **serializer.validated_data)
        return Response(status=202)


class DriverOffersView(RideListView):
    permission_classes = [IsAuthenticated, IsDriver]

    def get_queryset(self):
        return selectors.offer_list_for(driver=self.request.user.driver)
