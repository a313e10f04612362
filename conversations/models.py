"""Conversations between a contact and an org, and their messages."""

import uuid

from django.conf import settings
from django.db import models
from django.db.models import Q
from django.utils import timezone

from contacts.models import Contact, Device
from identity.models import Organization

MAX_MESSAGE_LENGTH = 10_000


class Conversation(models.Model):
    """A chat session. Who may read it is decided by conversations.selectors alone."""

    class Status(models.TextChoices):
        OPEN = "open", "Open"
        CLOSED = "closed", "Closed"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: the inbox indexes start with the org (see Meta.indexes).
    org = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="conversations", db_index=False
    )
    contact = models.ForeignKey(Contact, on_delete=models.CASCADE, related_name="conversations")
    # Not indexed alone: `conv_device_newest` starts with the device.
    device = models.ForeignKey(
        Device,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="conversations",
        db_index=False,
    )
    created_verified = models.BooleanField(default=False)
    external_id = models.CharField(max_length=255, blank=True)
    status = models.CharField(max_length=8, choices=Status.choices, default=Status.OPEN)
    # Indexed only where set (`conv_assignee`): most conversations have no assignee.
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="assigned_conversations",
        db_index=False,
    )
    fields = models.JSONField(default=dict, blank=True)
    sender_auth_info = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    last_message_at = models.DateTimeField(default=timezone.now)
    # The newest message, set in the same transaction as its INSERT by the services that append
    # one, so the history and the inbox show it with a join instead of a subquery per row.
    last_message = models.ForeignKey(
        "Message", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    closed_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.CheckConstraint(
                condition=Q(status__in=["open", "closed"]), name="conversation_status_valid"
            ),
        ]
        indexes = [
            # The widget history, newest first: anonymous and non-verified tokens list one
            # device's conversations, verified tokens their contact's verified ones. Each index
            # holds the page's whole ordering (created_at, then id), so even the plan PostgreSQL
            # makes without the values (the history is a prepared statement) reads the page in
            # order and stops, whatever the number of conversations.
            models.Index(fields=["device", "-created_at", "-id"], name="conv_device_newest"),
            models.Index(
                fields=["contact", "-created_at", "-id"],
                name="conv_contact_verified_newest",
                condition=Q(created_verified=True),
            ),
            # agent inbox: newest activity first, optionally by status
            models.Index(fields=["org", "status", "-last_message_at"], name="conv_org_status_last"),
            models.Index(fields=["org", "-last_message_at"], name="conv_org_last"),
            # the inbox's assignee filter, and SET_NULL when a user is deleted
            models.Index(
                fields=["assignee"], name="conv_assignee", condition=Q(assignee__isnull=False)
            ),
        ]

    def __str__(self) -> str:
        return f"conversation {str(self.id)[:8]} with {self.contact}"


class Message(models.Model):
    """One line in a conversation. Contact messages carry the senderAuthInfo of their token."""

    class SenderKind(models.TextChoices):
        CONTACT = "contact", "Contact"
        AGENT = "agent", "Agent"
        SYSTEM = "system", "System"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="+")
    # Not indexed alone: `message_conversation_id` starts with the conversation.
    conversation = models.ForeignKey(
        Conversation, on_delete=models.CASCADE, related_name="messages", db_index=False
    )
    sender_kind = models.CharField(max_length=8, choices=SenderKind.choices)
    # The senders' keys are indexed only where set (Meta.indexes), for SET_NULL on deletion:
    # a message has at most one of them, so full indexes would hold mostly NULLs.
    sender_user = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    sender_contact = models.ForeignKey(
        Contact, on_delete=models.SET_NULL, null=True, blank=True, related_name="+", db_index=False
    )
    # An integration's reply: the API key that posted it, whose name is shown as the sender.
    sender_api_key = models.ForeignKey(
        "identity.ApiKey",
        on_delete=models.SET_NULL,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,
    )
    body = models.TextField(max_length=MAX_MESSAGE_LENGTH)
    sender_auth_info = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["id"]
        constraints = [
            models.CheckConstraint(
                condition=Q(sender_kind__in=["contact", "agent", "system"]),
                name="message_sender_kind_valid",
            ),
        ]
        indexes = [
            # a thread, oldest first, and "after=<id>" polling
            models.Index(fields=["conversation", "id"], name="message_conversation_id"),
            models.Index(
                fields=["sender_user"],
                name="message_sender_user",
                condition=Q(sender_user__isnull=False),
            ),
            models.Index(
                fields=["sender_contact"],
                name="message_sender_contact",
                condition=Q(sender_contact__isnull=False),
            ),
            models.Index(
                fields=["sender_api_key"],
                name="message_sender_api_key",
                condition=Q(sender_api_key__isnull=False),
            ),
        ]

    def __str__(self) -> str:
        return f"{self.sender_kind}: {self.body[:40]}"
