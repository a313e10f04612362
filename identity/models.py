"""Agents, organizations, memberships, org API keys and customer signing secrets."""

import uuid
from datetime import timedelta

from django.contrib.auth.base_user import AbstractBaseUser, BaseUserManager
from django.contrib.auth.models import PermissionsMixin
from django.db import models, transaction
from django.db.models import Q
from django.utils import timezone

from config.emails import email_normalize
from identity.tokens import widget_token_new


class UserManager(BaseUserManager):
    use_in_migrations = True

    def _create_user(self, email, password, **extra_fields):
        if not email:
            raise ValueError("An email is required.")
        user = self.model(email=email_normalize(email), **extra_fields)
        user.set_password(password)
        user.save(using=self._db)
        return user

    def create_user(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", False)
        extra_fields.setdefault("is_superuser", False)
        return self._create_user(email, password, **extra_fields)

    def create_superuser(self, email, password=None, **extra_fields):
        extra_fields.setdefault("is_staff", True)
        extra_fields.setdefault("is_superuser", True)
        return self._create_user(email, password, **extra_fields)

    def get_by_natural_key(self, email):
        return self.get(email=email_normalize(email))


class User(AbstractBaseUser, PermissionsMixin):
    """A staff user (agent or operator) who signs in with email and password."""

    email = models.EmailField(max_length=254, unique=True)
    first_name = models.CharField(max_length=150, blank=True)
    last_name = models.CharField(max_length=150, blank=True)
    is_active = models.BooleanField(default=True)
    is_staff = models.BooleanField(default=False)
    date_joined = models.DateTimeField(default=timezone.now)

    objects = UserManager()

    USERNAME_FIELD = "email"
    EMAIL_FIELD = "email"
    REQUIRED_FIELDS: list[str] = []

    class Meta:
        ordering = ["email"]

    def __str__(self) -> str:
        return self.email

    def save(self, *args, **kwargs):
        self.email = email_normalize(self.email)
        # `set_password` leaves the new password here until it is saved.
        password_changed = self._password is not None and not self._state.adding
        with transaction.atomic():
            super().save(*args, **kwargs)
            if password_changed:
                self._refresh_tokens_revoke()

    def _refresh_tokens_revoke(self) -> None:
        """A new password ends every session the old one started: each refresh token issued
        before is blacklisted (its access tokens carry a hash of the old password, and fail
        too: SIMPLE_JWT's CHECK_REVOKE_TOKEN)."""
        from rest_framework_simplejwt.token_blacklist.models import (
            BlacklistedToken,
            OutstandingToken,
        )

        live = OutstandingToken.objects.filter(
            user=self, expires_at__gt=timezone.now(), blacklistedtoken__isnull=True
        )
        BlacklistedToken.objects.bulk_create(
            [BlacklistedToken(token=token) for token in live], ignore_conflicts=True
        )

    @property
    def display_name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip() or self.email


def default_extra_fields() -> list:
    return []


def default_theme() -> dict:
    return {"primaryColor": "#18bdf7", "title": "Chat with us"}


# The contact-token lifetimes an org may set (widget settings, API and admin alike).
MIN_LIFETIME = timedelta(minutes=5)
MAX_LIFETIME = timedelta(days=365)
MAX_VERIFIED_LIFETIME = timedelta(days=7)


# An org's extraDataCollectionFields: at most this many, each name at most this long.
MAX_EXTRA_FIELDS, MAX_EXTRA_FIELD_NAME = 20, 64


class Organization(models.Model):
    """A tenant. Its widget settings (SPEC §3.4) live on the row itself."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=64, unique=True)
    widget_token = models.CharField(max_length=64, unique=True, default=widget_token_new)
    created_at = models.DateTimeField(default=timezone.now)

    collect_user_data = models.BooleanField(default=False)
    extra_data_collection_fields = models.JSONField(default=default_extra_fields, blank=True)
    require_verified_identity = models.BooleanField(default=False)
    theme = models.JSONField(default=default_theme, blank=True)
    allowed_origins = models.JSONField(default=list, blank=True)
    merge_device_history_on_verify = models.BooleanField(default=True)
    anonymous_token_lifetime = models.DurationField(default=timedelta(days=30))
    non_verified_token_lifetime = models.DurationField(default=timedelta(days=30))
    verified_token_lifetime = models.DurationField(default=timedelta(hours=12))

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name


class MembershipQuerySet(models.QuerySet):
    def in_force(self) -> "MembershipQuerySet":
        """Memberships that give access: an active user's who is staff. Every member is staff
        (SPEC §6), so unticking "staff" or "active" cuts a user off everywhere at once: the API,
        the console and the admin, which asks the same of its users."""
        return self.filter(user__is_active=True, user__is_staff=True)


class Membership(models.Model):
    """An agent's place in an org. Owners and admins are operators."""

    class Role(models.TextChoices):
        OWNER = "owner", "Owner"
        ADMIN = "admin", "Admin"
        AGENT = "agent", "Agent"

    OPERATOR_ROLES = (Role.OWNER, Role.ADMIN)

    user = models.ForeignKey(User, on_delete=models.CASCADE, related_name="memberships")
    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="memberships")
    role = models.CharField(max_length=16, choices=Role.choices, default=Role.AGENT)
    created_at = models.DateTimeField(default=timezone.now)

    objects = MembershipQuerySet.as_manager()

    class Meta:
        ordering = ["org__name", "user__email"]
        constraints = [
            models.UniqueConstraint(fields=["user", "org"], name="membership_unique_user_org"),
            models.CheckConstraint(
                condition=Q(role__in=["owner", "admin", "agent"]), name="membership_role_valid"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.user} in {self.org} ({self.role})"

    @property
    def is_operator(self) -> bool:
        return self.role in self.OPERATOR_ROLES


class ApiKey(models.Model):
    """An org secret for server-to-server calls. Only the SHA-256 of the full key is stored."""

    class Scope(models.TextChoices):
        WIDGET_AUTHENTICATE = "widget:authenticate"
        CONTACTS_READ = "contacts:read"
        CONTACTS_WRITE = "contacts:write"
        CONVERSATIONS_READ = "conversations:read"
        CONVERSATIONS_WRITE = "conversations:write"

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="api_keys")
    name = models.CharField(max_length=200)
    public_id = models.CharField(max_length=16, unique=True)
    digest = models.CharField(max_length=64)
    scopes = models.JSONField(default=list)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        verbose_name = "API key"
        indexes = [
            # the operator list: GET /api/v1/orgs/{org}/api-keys, newest first
            models.Index(fields=["org", "-created_at"], name="apikey_org_created"),
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.prefix})"

    @property
    def prefix(self) -> str:
        return f"csk_{self.public_id}"

    def is_usable(self, now=None) -> bool:
        now = now or timezone.now()
        return self.revoked_at is None and (self.expires_at is None or self.expires_at > now)


class SigningSecret(models.Model):
    """An org's key for customer-signed JWTs: an encrypted HS256 secret or an RS/ES public key."""

    class Algorithm(models.TextChoices):
        HS256 = "HS256"
        RS256 = "RS256"
        ES256 = "ES256"

    MAX_ACTIVE = 2

    org = models.ForeignKey(Organization, on_delete=models.CASCADE, related_name="signing_secrets")
    kid = models.CharField(max_length=64, unique=True)
    algorithm = models.CharField(max_length=8, choices=Algorithm.choices)
    encrypted_secret = models.TextField(blank=True)
    public_key = models.TextField(blank=True)
    created_by = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=timezone.now)
    retired_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [
            # key selection on every custom-token sign-in: active secrets of one org
            models.Index(
                fields=["org", "created_at"],
                name="signing_secret_org_active",
                condition=Q(retired_at__isnull=True),
            ),
        ]
        constraints = [
            models.CheckConstraint(
                condition=(Q(algorithm="HS256") & ~Q(encrypted_secret=""))
                | (Q(algorithm__in=["RS256", "ES256"]) & ~Q(public_key="")),
                name="signing_secret_has_key_material",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.kid} ({self.algorithm})"


class AuditEvent(models.Model):
    """One security-relevant change, written in the transaction of the change. Never a secret."""

    class Action(models.TextChoices):
        API_KEY_CREATED = "api_key.created", "API key created"
        API_KEY_REVOKED = "api_key.revoked", "API key revoked"
        SIGNING_SECRET_CREATED = "signing_secret.created", "Signing secret created"
        SIGNING_SECRET_RETIRED = "signing_secret.retired", "Signing secret retired"
        WIDGET_TOKEN_ROTATED = "widget_token.rotated", "Widget token rotated"
        WIDGET_SETTINGS_CHANGED = "widget_settings.changed", "Widget settings changed"
        SIGNIN_LOCKED_OUT = "signin.locked_out", "Sign-in locked out"
        CONTACT_EXPORTED = "contact.exported", "Contact exported"
        CONTACT_ERASED = "contact.erased", "Contact erased"
        MEMBERSHIP_SET = "membership.set", "Member added or role changed"
        MEMBERSHIP_REMOVED = "membership.removed", "Member removed"

    # Null only for sign-in lockouts: a failed sign-in belongs to no org.
    org = models.ForeignKey(
        Organization, on_delete=models.CASCADE, null=True, blank=True, related_name="audit_events"
    )
    actor_user = models.ForeignKey(
        User, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    actor_api_key = models.ForeignKey(
        ApiKey, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    action = models.CharField(max_length=32, choices=Action.choices)
    target = models.CharField(max_length=128, blank=True)
    ip = models.CharField(max_length=64, blank=True)
    details = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-created_at", "-pk"]
        indexes = [
            # the operator list: GET /api/v1/orgs/{org}/audit-events, newest first
            models.Index(fields=["org", "-created_at"], name="auditevent_org_created"),
        ]
        constraints = [
            models.CheckConstraint(
                condition=Q(
                    action__in=[
                        "api_key.created",
                        "api_key.revoked",
                        "signing_secret.created",
                        "signing_secret.retired",
                        "widget_token.rotated",
                        "widget_settings.changed",
                        "signin.locked_out",
                        "contact.exported",
                        "contact.erased",
                        "membership.set",
                        "membership.removed",
                    ]
                ),
                name="auditevent_action_valid",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.action} {self.target}".strip()
