"""Contacts (visitors as an org knows them, with a trust level) and the devices holding tokens."""

import uuid

from django.db import models
from django.db.models import Q
from django.utils import timezone

from identity.models import Organization


class Contact(models.Model):
    """A person as the org knows them. Trust comes from how identity was proven, never the email."""

    class Trust(models.TextChoices):
        ANONYMOUS = "anonymous", "Anonymous"
        NON_VERIFIED = "non_verified", "Non-verified"
        VERIFIED = "verified", "Verified"

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    # Not indexed alone: every index below starts with the org (see Meta.indexes).
    org = models.ForeignKey(
        Organization, on_delete=models.CASCADE, related_name="contacts", db_index=False
    )
    trust = models.CharField(max_length=16, choices=Trust.choices, default=Trust.ANONYMOUS)
    name = models.CharField(max_length=200, blank=True)
    email = models.EmailField(max_length=254, blank=True)
    phone = models.CharField(max_length=64, blank=True)
    avatar_url = models.URLField(max_length=2048, blank=True)
    language = models.CharField(max_length=35, blank=True)
    user_id = models.CharField(max_length=255, blank=True)
    custom_data = models.JSONField(default=dict, blank=True)
    non_verified_custom_data = models.JSONField(default=dict, blank=True)
    chat_context = models.TextField(blank=True)
    http_action_overrides = models.JSONField(default=dict, blank=True)
    sender_auth_info = models.JSONField(default=dict, blank=True)
    verified_at = models.DateTimeField(null=True, blank=True)
    first_seen_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    erased_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-last_seen_at"]
        constraints = [
            # authenticate-user's identity key when the customer sends a user_id
            models.UniqueConstraint(
                fields=["org", "user_id"],
                condition=Q(trust="verified") & ~Q(user_id=""),
                name="contact_unique_verified_user_id",
            ),
            # one verified contact per email in an org (the 409 rule of SPEC §3.2)
            models.UniqueConstraint(
                fields=["org", "email"],
                condition=Q(trust="verified") & ~Q(email=""),
                name="contact_unique_verified_email",
            ),
            models.CheckConstraint(
                condition=Q(trust__in=["anonymous", "non_verified", "verified"]),
                name="contact_trust_valid",
            ),
            # rule 4: only server-to-server paths write the trusted fields
            models.CheckConstraint(
                condition=Q(trust="verified") | (Q(user_id="") & Q(verified_at__isnull=True)),
                name="contact_unverified_has_no_trusted_fields",
            ),
        ]
        indexes = [
            # agent contact list and admin changelist: newest first, optionally by trust
            models.Index(fields=["org", "-last_seen_at"], name="contact_org_last_seen"),
            models.Index(fields=["org", "trust", "-last_seen_at"], name="contact_org_trust_seen"),
            # agent search by email prefix: `LIKE 'prefix%'` can walk a btree only through the
            # pattern opclass unless the database collation is "C" (ignored off PostgreSQL)
            models.Index(
                fields=["org", "email"],
                name="contact_org_email_prefix",
                opclasses=["uuid_ops", "varchar_pattern_ops"],
            ),
            # agent search by name (contains, any case): the trigram GIN index
            # `contact_name_trgm` on UPPER(name), PostgreSQL only, lives in migration 0003
            # and not here, because SQLite could not rebuild this table with it.
        ]

    def __str__(self) -> str:
        if self.erased_at is not None:
            # Not its kept trust level: the admin titles its pages with this.
            return f"Erased contact {str(self.id)[:8]}"
        return self.name or self.email or f"{self.get_trust_display()} {str(self.id)[:8]}"

    @property
    def is_verified(self) -> bool:
        return self.trust == self.Trust.VERIFIED

    @property
    def has_shield(self) -> bool:
        """Whether agents see the shield: verified, and not erased (an erased contact keeps its
        trust level for statistics only; nobody it could vouch for is left)."""
        return self.is_verified and self.erased_at is None


class Device(models.Model):
    """One browser (or one verified sign-in) holding a contact token; revoked, the token dies."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="devices")
    # Not indexed alone: `device_contact_created` starts with the contact.
    contact = models.ForeignKey(
        Contact, on_delete=models.CASCADE, related_name="devices", db_index=False
    )
    created_at = models.DateTimeField(default=timezone.now)
    last_seen_at = models.DateTimeField(default=timezone.now)
    user_agent = models.CharField(max_length=512, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # a contact's devices, for logout-everywhere and erasure
            models.Index(fields=["contact", "-created_at"], name="device_contact_created"),
        ]

    def __str__(self) -> str:
        return f"device {str(self.id)[:8]} of {self.contact_id}"
