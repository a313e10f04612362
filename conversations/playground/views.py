"""The playground page and, in demo mode only, the demo customer backend it calls."""

import json

from django.conf import settings
from django.http import Http404
from django.shortcuts import render
from django.templatetags.static import static
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_safe
from drf_spectacular.utils import extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.permissions import BasePermission
from rest_framework.response import Response

from config.api import ViewSet
from config.exceptions import NotFound
from contacts.api.serializers import AuthenticateUserOutputSerializer
from conversations.playground import selectors, services
from conversations.playground.serializers import (
    DemoAuthenticateInputSerializer,
    OrgQuerySerializer,
)
from conversations.playground.throttles import DemoBackendIpThrottle

DEFAULT_ORG = "demo"


def embed_snippet(*, script_url: str, widget_token: str) -> str:
    """The snippet for the default options, as static/playground/playground.js renders it."""
    return (
        f'<script src="{script_url}"></script>\n'
        "<script>\n"
        "  ChatShield.init({\n"
        f"    widgetToken: {json.dumps(widget_token)},\n"
        "    collectUserData: false,\n"
        "  });\n"
        "</script>"
    )


@require_safe
def playground(request):
    try:
        org = selectors.organization_for_playground(slug=request.GET.get("org") or DEFAULT_ORG)
    except NotFound as exc:
        raise Http404 from exc
    script_url = request.build_absolute_uri(static("widget/chatshield.js"))
    backend_url = reverse("playground:demo-backend-authenticate")
    config = {
        "orgId": str(org.pk),
        "orgSlug": org.slug,
        "orgName": org.name,
        "widgetToken": org.widget_token,
        "scriptUrl": script_url,
        "demoMode": settings.DEMO_MODE,
        "demoBackendUrl": f"{backend_url}?{urlencode({'org': org.slug})}",
        "extraFields": org.extra_data_collection_fields,
    }
    context = {
        "org": org,
        "config": config,
        "snippet": embed_snippet(script_url=script_url, widget_token=org.widget_token),
        "demo_mode": settings.DEMO_MODE,
        "extra_fields_json": json.dumps(org.extra_data_collection_fields, indent=2),
    }
    return render(request, "playground/index.html", context)


class DemoModeOnly(BasePermission):
    """Outside demo mode the demo backend does not exist: 404, not 403."""

    def has_permission(self, request, view) -> bool:
        if not settings.DEMO_MODE:
            raise NotFound()
        return True


class DemoBackendViewSet(ViewSet):
    """A stand-in for a customer's backend, so the playground can show the verified model."""

    authentication_classes: list = []
    permission_classes = [DemoModeOnly]
    throttle_classes = [DemoBackendIpThrottle]

    @extend_schema(exclude=True)
    @action(detail=False, methods=["post"], url_path="authenticate", url_name="authenticate")
    def authenticate_user(self, request):
        query = OrgQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        org = selectors.organization_for_playground(slug=query.validated_data["org"])
        data = DemoAuthenticateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        issued = services.demo_verified_sign_in(
            org=org,
            email=data.validated_data["email"],
            name=data.validated_data.get("name"),
            user_id=data.validated_data.get("user_id", ""),
            user_agent=request.META.get("HTTP_USER_AGENT", ""),
        )
        body = {"token": issued.token, "contact": issued.contact, "expires_at": issued.expires_at}
        return Response(AuthenticateUserOutputSerializer(body).data, status=status.HTTP_201_CREATED)
