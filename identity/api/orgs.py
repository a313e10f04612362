"""GET /api/v1/orgs: the orgs the signed-in agent belongs to, with their role."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers
from rest_framework.response import Response

from config.api import ViewSet
from config.exceptions import Unauthenticated
from identity.api.authentication import AgentJWTAuthentication
from identity.models import Membership


class MembershipOutputSerializer(serializers.Serializer):
    id = serializers.UUIDField(source="org.id")
    name = serializers.CharField(source="org.name")
    slug = serializers.CharField(source="org.slug")
    role = serializers.CharField()


class MyOrgsViewSet(ViewSet):
    authentication_classes = [AgentJWTAuthentication]
    permission_classes: list = []

    @extend_schema(
        responses={
            200: MembershipOutputSerializer(many=True),
            401: OpenApiResponse(description="Not authenticated"),
        }
    )
    def list(self, request):
        if not request.user:
            raise Unauthenticated()
        memberships = Membership.objects.in_force().select_related("org").filter(user=request.user)
        return Response(MembershipOutputSerializer(memberships, many=True).data)
