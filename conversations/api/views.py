"""Conversation routes: the widget's `/widget/sessions…` and the agents' `/api/v1/orgs/{org}/…`."""

from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.decorators import action
from rest_framework.response import Response

from config.api import GenericViewSet
from config.pagination import KeysetPagination
from contacts.api.authentication import ContactTokenAuthentication
from conversations import selectors, services
from conversations.api.serializers import (
    AgentMessageOutputSerializer,
    AgentMessagesOutputSerializer,
    AssignInputSerializer,
    ConversationDetailOutputSerializer,
    ExternalIdQuerySerializer,
    InboxItemOutputSerializer,
    InboxQuerySerializer,
    MessageInputSerializer,
    MessagesQuerySerializer,
    SessionCreatedOutputSerializer,
    SessionCreateInputSerializer,
    SessionOutputSerializer,
    ThreadQuerySerializer,
    WidgetMessageOutputSerializer,
    WidgetMessagesOutputSerializer,
)
from conversations.models import Conversation
from identity.api.access import OrgScopedViewSet
from identity.models import ApiKey

INVALID = OpenApiResponse(description="Invalid input")
INVALID_LIST = OpenApiResponse(description="Invalid filter or cursor")
INVALID_WIDGET = OpenApiResponse(
    description="Invalid input, or external_id_required: a non-verified token sent no externalId"
)
UNAUTHENTICATED = OpenApiResponse(description="Not authenticated")
VERIFIED_ONLY = OpenApiResponse(
    description="verified_identity_required: the org chats with verified contacts only"
)
MISSING_SCOPE = OpenApiResponse(description="An API key without the route's scope")
NOT_FOUND = OpenApiResponse(description="Unknown, invisible or another org's conversation")
CLOSED = OpenApiResponse(description="conversation_closed: the conversation is closed")


class SessionPagination(KeysetPagination):
    ordering_field = selectors.HISTORY_ORDERING


class InboxPagination(KeysetPagination):
    ordering_field = "last_message_at"


_SESSION_OUTPUT = SessionOutputSerializer()


def _external_id(request) -> str | None:
    """The `externalId` query parameter, checked; None when there is none (nothing to check,
    and the history and posting are the widget's hottest routes)."""
    if "externalId" not in request.query_params:
        return None
    query = ExternalIdQuerySerializer(data=request.query_params)
    query.is_valid(raise_exception=True)
    return query.validated_data.get("externalId")


class WidgetSessionViewSet(GenericViewSet):
    """The visitor's conversations; what a token may see is `conversations.selectors`' rule."""

    authentication_classes = [ContactTokenAuthentication]
    permission_classes: list = []
    pagination_class = SessionPagination
    # Never read: it types the {id} path parameter in the OpenAPI schema.
    queryset = Conversation.objects.none()

    @extend_schema(
        parameters=[ExternalIdQuerySerializer],
        responses={
            200: SessionOutputSerializer(many=True),
            400: INVALID_WIDGET,
            401: UNAUTHENTICATED,
        },
    )
    def list(self, request):
        external_id = _external_id(request)
        page = self.paginator.paginate_fetch(
            lambda position, limit: selectors.conversation_history_page(
                principal=request.user, external_id=external_id, position=position, limit=limit
            ),
            request,
            Conversation,
        )
        # Each item from one shared serializer, whose to_representation reads only the row it
        # is given: DRF's list serializer made two serializers per page (docs/PERFORMANCE.md).
        return self.get_paginated_response([_SESSION_OUTPUT.to_representation(c) for c in page])

    @extend_schema(
        request=SessionCreateInputSerializer,
        responses={
            201: SessionCreatedOutputSerializer,
            400: INVALID_WIDGET,
            401: UNAUTHENTICATED,
            403: VERIFIED_ONLY,
        },
    )
    def create(self, request):
        data = SessionCreateInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_open(
            principal=request.user,
            external_id=data.validated_data.get("externalId"),
            fields=data.validated_data.get("fields"),
        )
        return Response(
            SessionCreatedOutputSerializer(conversation).data, status=status.HTTP_201_CREATED
        )

    @extend_schema(
        parameters=[MessagesQuerySerializer],
        responses={
            200: WidgetMessagesOutputSerializer,
            400: INVALID,
            401: UNAUTHENTICATED,
            404: NOT_FOUND,
        },
    )
    @action(detail=True, methods=["get"])
    def messages(self, request, pk=None):
        query = MessagesQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        conversation = selectors.conversation_visible_get(
            principal=request.user,
            conversation_id=pk,
            external_id=query.validated_data.get("externalId"),
        )
        messages = selectors.messages_for_conversation(
            conversation=conversation, after_id=query.validated_data.get("after")
        )
        return Response({"results": WidgetMessageOutputSerializer(messages, many=True).data})

    @extend_schema(
        parameters=[ExternalIdQuerySerializer],
        request=MessageInputSerializer,
        responses={
            201: WidgetMessageOutputSerializer,
            400: INVALID,
            401: UNAUTHENTICATED,
            403: VERIFIED_ONLY,
            404: NOT_FOUND,
            409: CLOSED,
        },
    )
    @messages.mapping.post
    def message_create(self, request, pk=None):
        external_id = _external_id(request)
        data = MessageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.message_post_contact(
            principal=request.user,
            conversation_id=pk,
            external_id=external_id,
            text=data.validated_data["text"],
        )
        return Response(WidgetMessageOutputSerializer(message).data, status=status.HTTP_201_CREATED)


READ, WRITE = ApiKey.Scope.CONVERSATIONS_READ, ApiKey.Scope.CONVERSATIONS_WRITE
ORG_ERRORS = {401: UNAUTHENTICATED, 403: MISSING_SCOPE, 404: NOT_FOUND}


class ConversationViewSet(OrgScopedViewSet):
    """The agents' inbox and threads; integrations use it with `conversations:*` scopes."""

    required_scopes = {
        "list": READ,
        "retrieve": READ,
        "messages": READ,
        "message_create": WRITE,
        "close": WRITE,
        "assign": WRITE,
    }
    pagination_class = InboxPagination
    queryset = Conversation.objects.none()

    @property
    def acting_api_key(self) -> ApiKey | None:
        principal = self.access.api_key_principal
        return principal.api_key if principal else None

    @extend_schema(
        parameters=[InboxQuerySerializer],
        responses={200: InboxItemOutputSerializer(many=True), 400: INVALID_LIST, **ORG_ERRORS},
    )
    def list(self, request, **kwargs):
        query = InboxQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        conversations = selectors.conversation_inbox(
            org=self.access.org,
            status=query.validated_data.get("status"),
            trust=query.validated_data.get("trust"),
            assignee_id=query.validated_data.get("assignee"),
        )
        page = self.paginate_queryset(conversations)
        return self.get_paginated_response(InboxItemOutputSerializer(page, many=True).data)

    @extend_schema(responses={200: ConversationDetailOutputSerializer, **ORG_ERRORS})
    def retrieve(self, request, pk=None, **kwargs):
        conversation = selectors.conversation_for_org(org=self.access.org, conversation_id=pk)
        return Response(ConversationDetailOutputSerializer(conversation).data)

    @extend_schema(
        parameters=[ThreadQuerySerializer],
        responses={200: AgentMessagesOutputSerializer, 400: INVALID, **ORG_ERRORS},
    )
    @action(detail=True, methods=["get"])
    def messages(self, request, pk=None, **kwargs):
        query = ThreadQuerySerializer(data=request.query_params)
        query.is_valid(raise_exception=True)
        conversation = selectors.conversation_for_org(org=self.access.org, conversation_id=pk)
        messages = selectors.messages_for_conversation(
            conversation=conversation, after_id=query.validated_data.get("after")
        )
        return Response({"results": AgentMessageOutputSerializer(messages, many=True).data})

    @extend_schema(
        request=MessageInputSerializer,
        responses={201: AgentMessageOutputSerializer, 400: INVALID, **ORG_ERRORS, 409: CLOSED},
    )
    @messages.mapping.post
    def message_create(self, request, pk=None, **kwargs):
        conversation = selectors.conversation_for_org(org=self.access.org, conversation_id=pk)
        data = MessageInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        message = services.message_post_agent(
            org=self.access.org,
            conversation=conversation,
            text=data.validated_data["text"],
            user=self.access.user,
            api_key=self.acting_api_key,
        )
        return Response(AgentMessageOutputSerializer(message).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: ConversationDetailOutputSerializer, **ORG_ERRORS})
    @action(detail=True, methods=["post"])
    def close(self, request, pk=None, **kwargs):
        conversation = selectors.conversation_for_org(org=self.access.org, conversation_id=pk)
        conversation = services.conversation_close(
            org=self.access.org, conversation=conversation, user=self.access.user
        )
        return Response(ConversationDetailOutputSerializer(conversation).data)

    @extend_schema(
        request=AssignInputSerializer,
        responses={200: ConversationDetailOutputSerializer, 400: INVALID, **ORG_ERRORS},
    )
    @action(detail=True, methods=["post"])
    def assign(self, request, pk=None, **kwargs):
        conversation = selectors.conversation_for_org(org=self.access.org, conversation_id=pk)
        data = AssignInputSerializer(data=request.data)
        data.is_valid(raise_exception=True)
        conversation = services.conversation_assign(
            org=self.access.org,
            conversation=conversation,
            assignee=data.validated_data["assignee"],
        )
        return Response(ConversationDetailOutputSerializer(conversation).data)
