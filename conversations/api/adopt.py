"""POST /widget/contacts/adopt: a verified token adopts its browser's anonymous history."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import ViewSet
from config.fields import StrictCharField
from contacts.api.authentication import ContactTokenAuthentication
from contacts.api.views import WIDGET_TOKEN
from conversations.adopt import contact_device_adopt


class AdoptInputSerializer(serializers.Serializer):
    previousToken = StrictCharField(max_length=4096)


class AdoptOutputSerializer(serializers.Serializer):
    adopted = serializers.IntegerField()


class WidgetAdoptViewSet(ViewSet):
    authentication_classes = [ContactTokenAuthentication]
    permission_classes: list = []

    @extend_schema(
        parameters=[WIDGET_TOKEN],
        request=AdoptInputSerializer,
        responses={
            200: AdoptOutputSerializer,
            400: OpenApiResponse(description="previousToken is not adoptable"),
            401: OpenApiResponse(description="Invalid contact token"),
            403: OpenApiResponse(description="The caller's token is not verified"),
        },
    )
    @action(detail=False, methods=["post"], url_path="contacts/adopt")
    def adopt(self, request):
        data = AdoptInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        moved = contact_device_adopt(
            principal=request.user, previous_token=data.validated_data["previousToken"]
        )
        return Response(AdoptOutputSerializer({"adopted": moved}).data)
