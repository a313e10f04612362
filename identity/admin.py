"""The identity models in the admin, scoped per membership.

Members see their orgs; operators (owners, admins) edit widget settings, manage memberships and
manage API keys and signing secrets, whose secrets are shown once right after creation. Users are
managed by superusers only. Sign-in (admin and console) goes through the agent lockout. Every
changelist, Django's and simplejwt's included, reads only the filters it offers.
"""

import math
import secrets

from django import forms
from django.contrib import admin, messages
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.admin import GroupAdmin as DjangoGroupAdmin
from django.contrib.auth.admin import UserAdmin as DjangoUserAdmin
from django.contrib.auth.forms import AdminUserCreationForm, AuthenticationForm, UserChangeForm
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.core.exceptions import PermissionDenied, ValidationError
from django.db.models import OuterRef, Subquery
from django.forms.fields import InvalidJSONInput
from django.http import HttpResponseRedirect
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.cache import add_never_cache_headers
from django.utils.html import format_html
from django.utils.text import capfirst
from rest_framework.exceptions import Throttled
from rest_framework_simplejwt.token_blacklist import admin as token_blacklist_admin
from rest_framework_simplejwt.token_blacklist.models import BlacklistedToken, OutstandingToken

from config.emails import email_clean, email_normalize
from config.exceptions import ApplicationError, Unauthenticated
from config.http import client_ip
from config.jsontext import as_sentence, json_value_check
from identity import services
from identity.admin_scoping import (
    OPERATOR_ROLES,
    OfferedLookupsOnlyMixin,
    OrgListFilter,
    OrgScopedAdminMixin,
    is_operator_of,
    member_roles,
    org_ids_with_role,
)
from identity.api.widget_settings import WidgetSettingsSerializer
from identity.models import ApiKey, Membership, Organization, SigningSecret, User

# --- sign-in ---------------------------------------------------------------------------------


class LockoutAuthenticationForm(AuthenticationForm):
    """Email + password through `agent_sign_in`, so browser sign-ins share the API's lockout."""

    username = forms.EmailField(
        label="Email",
        max_length=254,
        widget=forms.EmailInput(attrs={"autofocus": True, "autocomplete": "email"}),
    )

    def clean(self):
        email = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if email and password:
            try:
                self.user_cache = services.agent_sign_in(
                    email=email, password=password, ip=client_ip(self.request)
                )
            except Throttled as exc:
                self.retry_after = exc.wait  # the view answers 429 with it (lockout_status)
                raise ValidationError(services.SIGN_IN_LOCKED, code="locked_out") from exc
            except Unauthenticated as exc:
                raise self.get_invalid_login_error() from exc
            self.confirm_login_allowed(self.user_cache)
        return self.cleaned_data


class AdminLockoutAuthenticationForm(LockoutAuthenticationForm, AdminAuthenticationForm):
    """The admin's sign-in: the lockout, plus the admin's staff-only rule."""


def lockout_status(response):
    """A sign-in page refused for the lockout is a 429 with `Retry-After` (SPEC §5), the form
    and its message shown as ever; any other answer is left as it is."""
    form = (getattr(response, "context_data", None) or {}).get("form")
    retry_after = getattr(form, "retry_after", None)
    if retry_after:
        response.status_code = 429
        response["Retry-After"] = str(math.ceil(retry_after))
    return response


def _admin_login(request, extra_context=None, _login=admin.site.login):
    return lockout_status(_login(request, extra_context))


admin.site.login_form = AdminLockoutAuthenticationForm
admin.site.login = _admin_login
admin.site.site_header = "chatshield"
admin.site.site_title = "chatshield admin"
admin.site.index_title = "Identity, contacts and conversations"
admin.site.site_url = "/console/"
# The contacts list needs the width more than a second copy of the index does.
admin.site.enable_nav_sidebar = False


# --- shared helpers for create-once secrets --------------------------------------------------


def add_service_errors(form: forms.Form, exc: Exception) -> None:
    """Show a service's validation or conflict error on the form instead of a 500."""
    if isinstance(exc, ValidationError) and hasattr(exc, "error_dict"):
        for field, errors in exc.message_dict.items():
            form.add_error(field if field in form.fields else None, errors)
    elif isinstance(exc, ValidationError):
        form.add_error(None, exc.messages)
    else:
        form.add_error(None, str(getattr(exc, "detail", exc)))


def operator_orgs(request):
    ids = org_ids_with_role(request, OPERATOR_ROLES)
    orgs = Organization.objects.order_by("name")
    return orgs if ids is None else orgs.filter(id__in=ids)


class SecretAdminMixin(OrgScopedAdminMixin):
    """API keys and signing secrets: operators only, created by services, never edited.

    Subclasses name their secret (`reveal_model`, `reveal_noun`), their way of switching one off
    (`confirm_verb`, `deactivate_consequence`) and implement `create` and `deactivate`, which call
    `identity.services`; no key material is made here.
    """

    view_roles = OPERATOR_ROLES
    add_roles = OPERATOR_ROLES
    add_form_class: type[forms.Form]
    reveal_model = ""
    reveal_noun = ""
    add_note = ""
    confirm_verb = ""
    deactivate_consequence = ""

    class Media:
        css = {"all": ("console/panel.css",)}

    def has_deactivate_permission(self, request, obj=None):
        return self._allowed(request, OPERATOR_ROLES, obj)

    def get_urls(self):
        info = f"{self.opts.app_label}_{self.opts.model_name}"
        wrap = self.admin_site.admin_view
        return [
            path(
                "<path:object_id>/created/",
                wrap(self.created_view),
                name=f"{info}_created",
            ),
            path(
                f"<path:object_id>/{self.confirm_verb.lower()}/",
                wrap(self.deactivate_view),
                name=f"{info}_deactivate",
            ),
            *super().get_urls(),
        ]

    def _context(self, request, **extra):
        return {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "has_view_permission": self.has_view_permission(request),
            **extra,
        }

    def add_view(self, request, form_url="", extra_context=None):
        if not self.has_add_permission(request):
            raise PermissionDenied
        form = self.add_form_class(request.POST or None, orgs=operator_orgs(request))
        submission = request.POST.get("submission", "")
        if request.method == "POST" and form.is_valid():
            # The form's one-time submission id: the secret is shown in this POST's answer, so a
            # reload sends the form again; the second sending finds the first's object and is
            # told the secret was shown once, instead of creating another working key.
            earlier = self._submission_claim(submission)
            if earlier is not None:
                return HttpResponseRedirect(earlier)
            try:
                obj, secret = self.create(request, form.cleaned_data)
            except (ValidationError, ApplicationError) as exc:
                cache.delete(self._submission_key(submission))
                add_service_errors(form, exc)
            else:
                cache.set(self._submission_key(submission), obj.pk, timeout=SUBMISSION_SECONDS)
                self.log_addition(request, obj, [{"added": {}}])
                if secret:
                    # Shown in this response only: never stored (not even in the session), so
                    # the one display is the POST's answer and nothing can replay it.
                    return self._created_response(request, obj, secret)
                self.message_user(request, f"Added {obj}.", messages.SUCCESS)
                return HttpResponseRedirect(
                    reverse(
                        f"admin:{self.opts.app_label}_{self.opts.model_name}_change", args=[obj.pk]
                    )
                )
        context = self._context(
            request,
            title=f"Add {self.opts.verbose_name}",
            form=form,
            note=self.add_note,
            submission=submission if form.errors else secrets.token_urlsafe(16),
        )
        return TemplateResponse(request, "admin/identity/secret_add_form.html", context)

    def _submission_key(self, submission: str) -> str:
        return f"admin-add:{self.opts.model_name}:{submission}"

    def _submission_claim(self, submission: str) -> str | None:
        """None when this sending of the form may create (its id is claimed now); otherwise
        where to send it: the created page of what an earlier sending made, or the list while
        that one is still being made.

        A form without an id (not from our page) is not deduplicated. `cache.add` claims the id
        atomically, so of two sendings at once exactly one creates.
        """
        if not submission or len(submission) > 64:
            return None
        key = self._submission_key(submission)
        if cache.add(key, "", timeout=SUBMISSION_SECONDS):
            return None
        info = f"admin:{self.opts.app_label}_{self.opts.model_name}"
        if created := cache.get(key):
            return reverse(f"{info}_created", args=[created])
        return reverse(f"{info}_changelist")

    def _created_response(self, request, obj, secret: str | None):
        context = self._context(
            request,
            title=f"{capfirst(self.opts.verbose_name)} created",
            original=obj,
            secret=secret,
            reveal_noun=self.reveal_noun,
        )
        response = TemplateResponse(request, "admin/identity/secret_created.html", context)
        add_never_cache_headers(response)
        return response

    def created_view(self, request, object_id):
        """After the one display: says the secret cannot be shown again."""
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_view_permission(request, obj):
            raise PermissionDenied
        return self._created_response(request, obj, None)

    def deactivate_view(self, request, object_id):
        obj = self.get_object(request, object_id)
        if obj is None or not self.has_deactivate_permission(request, obj):
            raise PermissionDenied
        if request.method == "POST":
            self.deactivate(request, obj)
            self.log_change(request, obj, f"{self.confirm_verb}d")
            self.message_user(request, f"{self.confirm_verb}d {obj}.", messages.SUCCESS)
            return HttpResponseRedirect(
                reverse(f"admin:{self.opts.app_label}_{self.opts.model_name}_changelist")
            )
        context = self._context(
            request,
            title=f"{self.confirm_verb} {obj}?",
            original=obj,
            verb=self.confirm_verb,
            consequence=self.deactivate_consequence,
        )
        return TemplateResponse(request, "admin/identity/confirm_action.html", context)

    def deactivate_selected(self, request, queryset):
        count = 0
        for obj in queryset.select_related("org"):
            self.deactivate(request, obj)
            self.log_change(request, obj, f"{self.confirm_verb}d")
            count += 1
        self.message_user(request, f"{self.confirm_verb}d {count}.", messages.SUCCESS)

    @admin.display(description="")
    def row_action(self, obj):
        if not self.is_active(obj):
            return ""
        url = reverse(
            f"admin:{self.opts.app_label}_{self.opts.model_name}_deactivate", args=[obj.pk]
        )
        return format_html('<a class="button" href="{}">{}</a>', url, self.confirm_verb)


# How long a sent add form's id is remembered: a reload after that creates again.
SUBMISSION_SECONDS = 3600


# --- organizations -----------------------------------------------------------------------------

# The admin form's JSON and duration fields, as the widget-settings API names them.
SETTINGS_API_NAMES = {
    "extra_data_collection_fields": "extraDataCollectionFields",
    "theme": "theme",
    "allowed_origins": "allowedOrigins",
    "anonymous_token_lifetime": "anonymousTokenLifetime",
    "non_verified_token_lifetime": "nonVerifiedTokenLifetime",
    "verified_token_lifetime": "verifiedTokenLifetime",
}
LIFETIME_FIELDS = (
    "anonymous_token_lifetime",
    "non_verified_token_lifetime",
    "verified_token_lifetime",
)


class StrictJSONFormField(forms.JSONField):
    """Django's JSON form field held to what the API's parser refuses (config.jsontext): NUL, lone
    surrogates, infinite numbers. Refused input is shown again as typed, never re-encoded."""

    def to_python(self, value):
        parsed = super().to_python(value)
        try:
            json_value_check(parsed)
        except ValueError as exc:
            raise ValidationError(as_sentence(str(exc)), code="invalid") from exc
        return parsed

    def bound_data(self, data, initial):
        value = super().bound_data(data, initial)
        try:
            json_value_check(value)
        except ValueError:
            return InvalidJSONInput(data)
        return value


class OrganizationAdminForm(forms.ModelForm):
    """Widget settings validated by the same rules as the widget-settings API."""

    class Meta:
        model = Organization
        field_classes = {
            "extra_data_collection_fields": StrictJSONFormField,
            "theme": StrictJSONFormField,
            "allowed_origins": StrictJSONFormField,
        }
        fields = (
            "name",
            "slug",
            "collect_user_data",
            "extra_data_collection_fields",
            "require_verified_identity",
            "theme",
            "allowed_origins",
            "merge_device_history_on_verify",
            *LIFETIME_FIELDS,
        )

    def clean(self):
        cleaned = super().clean()
        payload = {}
        for field, api_name in SETTINGS_API_NAMES.items():
            if field not in cleaned or field not in self.changed_data:
                continue
            value = cleaned[field]
            if field in LIFETIME_FIELDS and value is not None:
                value = int(value.total_seconds())
            payload[api_name] = value
        serializer = WidgetSettingsSerializer(data=payload, partial=True)
        if not serializer.is_valid():
            by_api_name = {api: field for field, api in SETTINGS_API_NAMES.items()}
            for api_name, errors in serializer.errors.items():
                self.add_error(by_api_name.get(api_name), [str(e) for e in _flat(errors)])
            return cleaned
        cleaned.update(serializer.validated_data)
        return cleaned


def _flat(errors):
    if isinstance(errors, dict):
        for key, value in errors.items():
            for message in _flat(value):
                yield f"{key}: {message}"
    elif isinstance(errors, list):
        for value in errors:
            yield from _flat(value)
    else:
        yield errors


@admin.register(Organization)
class OrganizationAdmin(OrgScopedAdminMixin, admin.ModelAdmin):
    """Members read their orgs; operators edit the widget settings and rotate the widget token."""

    form = OrganizationAdminForm
    org_lookup = "id"
    change_roles = OPERATOR_ROLES
    list_display = ("name", "slug", "your_role", "widget_token", "created_at")
    search_fields = ("name", "slug")
    actions = ("rotate_widget_token",)
    readonly_fields = ("id", "widget_token", "created_at")
    change_form_template = "admin/identity/organization/change_form.html"
    fieldsets = (
        (None, {"fields": ("name", "slug", "id", "widget_token", "created_at")}),
        (
            "Widget",
            {
                "fields": (
                    "collect_user_data",
                    "extra_data_collection_fields",
                    "require_verified_identity",
                    "theme",
                    "allowed_origins",
                    "merge_device_history_on_verify",
                )
            },
        ),
        (
            "Contact token lifetimes",
            {
                "fields": LIFETIME_FIELDS,
                "description": "Durations such as “30 00:00:00” (30 days) or “12:00:00”.",
            },
        ),
    )

    def has_add_permission(self, request, *args):
        return request.user.is_active and request.user.is_superuser

    def has_delete_permission(self, request, obj=None):
        return request.user.is_active and request.user.is_superuser

    def delete_model(self, request, obj):
        services.organization_delete(org=obj)

    def delete_queryset(self, request, queryset):
        for org in queryset.order_by("pk"):
            services.organization_delete(org=org)

    def get_readonly_fields(self, request, obj=None):
        fields = super().get_readonly_fields(request, obj)
        if obj is not None and not request.user.is_superuser:
            fields = (*fields, "slug")
        return fields

    def get_queryset(self, request):
        own_role = Membership.objects.filter(org=OuterRef("pk"), user=request.user).values("role")
        return super().get_queryset(request).annotate(member_role=Subquery(own_role[:1]))

    @admin.display(description="Your role")
    def your_role(self, obj):
        role = getattr(obj, "member_role", None)
        return Membership.Role(role).label if role else "—"

    def save_model(self, request, obj, form, change):
        if not change:
            super().save_model(request, obj, form, change)
            return
        # Widget settings go through the same service as the API: cache dropped, change audited.
        widget = set(services.WIDGET_SETTING_FIELDS)
        other = [field for field in form.changed_data if field not in widget]
        if other:
            obj.save(update_fields=other)
        services.organization_widget_settings_update(
            org=obj,
            changes={f: form.cleaned_data[f] for f in form.changed_data if f in widget},
            actor_user=request.user,
            ip=client_ip(request),
        )

    def has_rotate_permission(self, request):
        return self._allowed(request, OPERATOR_ROLES)

    @admin.action(description="Rotate widget token", permissions=["rotate"])
    def rotate_widget_token(self, request, queryset):
        rotated = 0
        for org in queryset:
            if is_operator_of(request, org.pk):
                services.organization_widget_token_rotate(
                    org=org, actor_user=request.user, ip=client_ip(request)
                )
                self.log_change(request, org, "Rotated the widget token.")
                rotated += 1
        self.message_user(
            request,
            f"Rotated the widget token of {rotated} organization(s). Update the embed snippets.",
            messages.SUCCESS,
        )

    def get_urls(self):
        return [
            path(
                "<path:object_id>/rotate-widget-token/",
                self.admin_site.admin_view(self.rotate_view),
                name="identity_organization_rotate",
            ),
            *super().get_urls(),
        ]

    def rotate_view(self, request, object_id):
        org = self.get_object(request, object_id)
        if org is None or not is_operator_of(request, org.pk):
            raise PermissionDenied
        if request.method == "POST":
            services.organization_widget_token_rotate(
                org=org, actor_user=request.user, ip=client_ip(request)
            )
            self.log_change(request, org, "Rotated the widget token.")
            self.message_user(
                request,
                "The widget token was rotated. Update the embed snippet on your site.",
                messages.SUCCESS,
            )
            return HttpResponseRedirect(
                reverse("admin:identity_organization_change", args=[org.pk])
            )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "app_label": self.opts.app_label,
            "has_view_permission": True,
            "title": f"Rotate the widget token of {org}?",
            "original": org,
            "verb": "Rotate widget token",
            "consequence": "Widgets embedded with the current token stop working at once, until "
            "the new token is in the embed snippet.",
        }
        return TemplateResponse(request, "admin/identity/confirm_action.html", context)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        context["can_rotate"] = obj is not None and is_operator_of(request, obj.pk)
        return super().render_change_form(request, context, add, change, form_url, obj)


# --- users (superusers only) ---------------------------------------------------------------------


class SuperuserOnlyRowsMixin:
    """An admin for superusers only finds no row for anyone else.

    Django's history view looks its object up before it asks for permission: a member got a 403
    for an id that exists and "doesn't exist" for one that does not, and so could count the
    instance's accounts, groups and tokens, other tenants' included. Finding nothing, every URL
    of such an admin answers a member alike for both.
    """

    def get_queryset(self, request):
        queryset = super().get_queryset(request)
        if request.user.is_active and request.user.is_superuser:
            return queryset
        return queryset.none()


class EmailUserCreationForm(AdminUserCreationForm):
    class Meta:
        model = User
        fields = ("email",)

    def clean_email(self):
        return user_email_clean(self.cleaned_data["email"], user=None)


def user_email_clean(email: str, *, user: User | None) -> str:
    """An account's email as it will be stored (`config.emails.email_clean`), and not another
    account's: compared normalized, as sign-in looks it up, so no spelling reaches the unique
    index as a 500."""
    email = email_clean(email)
    if User.objects.filter(email=email).exclude(pk=getattr(user, "pk", None)).exists():
        raise ValidationError("A user with this email already exists.")
    return email


class EmailUserChangeForm(UserChangeForm):
    class Meta:
        model = User
        fields = (
            "email",
            "password",
            "first_name",
            "last_name",
            "is_active",
            "is_staff",
            "is_superuser",
            "last_login",
            "date_joined",
        )

    def clean_email(self):
        return user_email_clean(self.cleaned_data["email"], user=self.instance)


@admin.register(User)
class UserAdmin(SuperuserOnlyRowsMixin, OfferedLookupsOnlyMixin, DjangoUserAdmin):
    """Accounts are a superuser's business; operators add existing users to their orgs."""

    form = EmailUserChangeForm
    add_form = EmailUserCreationForm
    list_display = ("email", "first_name", "last_name", "is_staff", "is_superuser", "is_active")
    list_filter = ("is_staff", "is_superuser", "is_active")
    search_fields = ("email", "first_name", "last_name")
    ordering = ("email",)
    filter_horizontal = ()
    fieldsets = (
        (None, {"fields": ("email", "password")}),
        ("Personal info", {"fields": ("first_name", "last_name")}),
        ("Access", {"fields": ("is_active", "is_staff", "is_superuser")}),
        ("Dates", {"fields": ("last_login", "date_joined")}),
    )
    add_fieldsets = (
        (
            None,
            {
                "classes": ("wide",),
                "fields": ("email", "usable_password", "password1", "password2"),
            },
        ),
    )

    def _superuser(self, request) -> bool:
        return request.user.is_active and request.user.is_superuser

    def has_module_permission(self, request):
        return self._superuser(request)

    def has_view_permission(self, request, obj=None):
        return self._superuser(request)

    def has_add_permission(self, request):
        return self._superuser(request)

    def has_change_permission(self, request, obj=None):
        return self._superuser(request)

    def has_delete_permission(self, request, obj=None):
        return self._superuser(request)


# --- the other apps' admins (superusers only) -------------------------------------------------


class GroupAdmin(SuperuserOnlyRowsMixin, OfferedLookupsOnlyMixin, DjangoGroupAdmin):
    """Django's, with the changelist held to the lookups it offers and rows for superusers only."""


class OutstandingTokenAdmin(
    SuperuserOnlyRowsMixin, OfferedLookupsOnlyMixin, token_blacklist_admin.OutstandingTokenAdmin
):
    """simplejwt's, with the changelist held to the lookups it offers and rows for superusers
    only."""


class BlacklistedTokenAdmin(
    SuperuserOnlyRowsMixin, OfferedLookupsOnlyMixin, token_blacklist_admin.BlacklistedTokenAdmin
):
    """simplejwt's, with the changelist held to the lookups it offers and rows for superusers
    only."""


# Registered by their apps, which come before this one in INSTALLED_APPS (and the import above).
for model, model_admin in (
    (Group, GroupAdmin),
    (OutstandingToken, OutstandingTokenAdmin),
    (BlacklistedToken, BlacklistedTokenAdmin),
):
    admin.site.unregister(model)
    admin.site.register(model, model_admin)


# --- memberships -------------------------------------------------------------------------------


MEMBER_NOT_ADDABLE = (
    "No account with this email can be added here. A superuser creates accounts, and adds people "
    "who already belong to another organization."
)
MEMBER_TURNED_OFF = (
    "This account's staff access was turned off by a superuser, which ends all of its memberships; "
    'only a superuser can turn it back on (tick "staff" on the user).'
)


class MembershipForm(forms.ModelForm):
    """Add an existing user by email (never a list of every account); owners alone grant owner."""

    email = forms.EmailField(label="User email", required=False)

    class Meta:
        model = Membership
        fields = ("org", "role")

    def __init__(self, *args, request=None, **kwargs):
        super().__init__(*args, **kwargs)
        self.request = request
        if self.instance.pk:
            del self.fields["email"]
        else:
            self.fields["email"].required = True
            orgs = self.fields["org"].queryset
            if len(orgs) == 1:
                self.fields["org"].initial = orgs[0].pk

    def clean_email(self):
        email = email_normalize(self.cleaned_data["email"])
        user = User.objects.filter(email=email, is_active=True).first()
        # One answer for "no such account" and "not yours to add": the form is no oracle of who
        # has an account elsewhere on the instance.
        if user is None or not self._may_add(user):
            raise ValidationError(MEMBER_NOT_ADDABLE)
        if services.account_cut_off(user):
            # Adding one more membership would change nothing, and must not look as if it had
            # given access back.
            raise ValidationError(MEMBER_TURNED_OFF)
        return user

    def _may_add(self, user: User) -> bool:
        """A superuser adds anyone. An operator adds an account that belongs to no organization
        yet (a superuser's new account) or only to organizations they operate too: never
        another tenant's agent, whose inbox and lists would then fill with this org's contacts
        without anyone there agreeing to it."""
        if self.request.user.is_active and self.request.user.is_superuser:
            return True
        theirs = set(Membership.objects.filter(user=user).values_list("org_id", flat=True))
        return theirs <= org_ids_with_role(self.request, OPERATOR_ROLES)

    def clean(self):
        cleaned = super().clean()
        org, role = cleaned.get("org") or self.instance_org(), cleaned.get("role")
        if org is None or role is None:
            return cleaned
        roles = member_roles(self.request)
        is_owner = self.request.user.is_superuser or roles.get(org.pk) == Membership.Role.OWNER
        if role == Membership.Role.OWNER and not is_owner:
            self.add_error("role", "Only an owner of this organization can make someone owner.")
        if (
            self.instance.pk
            and self.instance.role == Membership.Role.OWNER
            and role != Membership.Role.OWNER
            and is_last_owner(self.instance)
        ):
            self.add_error("role", services.LastOwner.default_detail)
        user = cleaned.get("email")
        if user is not None and Membership.objects.filter(user=user, org=org).exists():
            self.add_error("email", "This user is already a member of this organization.")
        return cleaned

    def instance_org(self):
        return self.instance.org if self.instance.pk else None


def is_last_owner(membership: Membership) -> bool:
    """Read without a lock, for the form's message and the delete button: a request that passed
    it may still find the other owner gone when it writes, and the service refuses it then."""
    return membership.role == Membership.Role.OWNER and services.org_owner_ids(
        org_id=membership.org_id
    ) == {membership.user_id}


@admin.register(Membership)
class MembershipAdmin(OrgScopedAdminMixin, admin.ModelAdmin):
    """Operators manage who belongs to their orgs; admins cannot touch owners."""

    form = MembershipForm
    view_roles = add_roles = change_roles = delete_roles = OPERATOR_ROLES
    list_display = ("user", "org", "role", "created_at")
    list_filter = ("role", OrgListFilter)
    list_select_related = ("user", "org")
    search_fields = ("user__email",)
    ordering = ("org__name", "user__email")

    def get_fields(self, request, obj=None):
        return ("member", "org", "role") if obj else ("email", "org", "role")

    def get_readonly_fields(self, request, obj=None):
        return ("member", "org") if obj else ()

    @admin.display(description="user")
    def member(self, obj):
        # The email as text: Django would link a read-only user to the users' pages, which only
        # superusers may open (an operator's click was a 403).
        return obj.user.email

    def get_form(self, request, obj=None, change=False, **kwargs):
        form_class = super().get_form(request, obj, change=change, **kwargs)

        class RequestMembershipForm(form_class):
            def __init__(self, *args, **kw):
                super().__init__(*args, request=request, **kw)

        return RequestMembershipForm

    def get_actions(self, request):
        actions = super().get_actions(request)
        actions.pop("delete_selected", None)
        return actions

    def _may_touch(self, request, obj) -> bool:
        if request.user.is_superuser or obj.role != Membership.Role.OWNER:
            return True
        return member_roles(request).get(obj.org_id) == Membership.Role.OWNER

    def has_change_permission(self, request, obj=None):
        allowed = super().has_change_permission(request, obj)
        return allowed and (obj is None or self._may_touch(request, obj))

    def has_delete_permission(self, request, obj=None):
        allowed = super().has_delete_permission(request, obj)
        return allowed and (
            obj is None or (self._may_touch(request, obj) and not is_last_owner(obj))
        )

    def save_model(self, request, obj, form, change):
        user = obj.user if change else form.cleaned_data["email"]
        saved = services.membership_set(
            user=user, org=obj.org, role=obj.role, actor_user=request.user, ip=client_ip(request)
        )
        obj.pk, obj.user, obj.created_at = saved.pk, saved.user, saved.created_at

    def delete_model(self, request, obj):
        services.membership_remove(membership=obj, actor_user=request.user, ip=client_ip(request))

    def changeform_view(self, request, *args, **kwargs):
        try:
            return super().changeform_view(request, *args, **kwargs)
        except services.LastOwner as exc:
            return self._last_owner_refused(request, exc)

    def delete_view(self, request, *args, **kwargs):
        try:
            return super().delete_view(request, *args, **kwargs)
        except services.LastOwner as exc:
            return self._last_owner_refused(request, exc)

    def _last_owner_refused(self, request, exc: services.LastOwner):
        """The form and the delete button saw another owner, who was demoted or removed before
        this write; the view's transaction is rolled back. Back to the list, which shows who is
        owner now: the change page may be closed to the user by then (an admin cannot touch
        owners)."""
        self.message_user(request, str(exc.detail), messages.ERROR)
        return HttpResponseRedirect(reverse("admin:identity_membership_changelist"))


# --- API keys ----------------------------------------------------------------------------------


class OrgChoiceFormMixin:
    def __init__(self, *args, orgs, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["org"].queryset = orgs
        if len(orgs) == 1:
            self.fields["org"].initial = orgs[0].pk


class ApiKeyCreateForm(OrgChoiceFormMixin, forms.Form):
    org = forms.ModelChoiceField(queryset=Organization.objects.none(), label="Organization")
    name = forms.CharField(max_length=services.API_KEY_NAME_MAX_CHARS, help_text="What uses it.")
    scopes = forms.MultipleChoiceField(
        choices=[(scope, scope) for scope in ApiKey.Scope.values],
        widget=forms.CheckboxSelectMultiple,
        initial=[ApiKey.Scope.WIDGET_AUTHENTICATE],
        help_text="widget:authenticate is what your backend needs to sign visitors in.",
    )
    expires_at = forms.DateTimeField(
        required=False,
        label="Expires at",
        help_text="Optional, UTC, e.g. 2030-01-31 12:00. Empty: valid until revoked.",
    )


@admin.register(ApiKey)
class ApiKeyAdmin(SecretAdminMixin, admin.ModelAdmin):
    """Operators create keys (shown once), list them by prefix and revoke them."""

    add_form_class = ApiKeyCreateForm
    reveal_model = "apikey"
    add_note = "The full key is shown once, on the next page; afterwards only its prefix is listed."
    reveal_noun = "API key"
    confirm_verb = "Revoke"
    deactivate_consequence = (
        "Servers using this key are refused from the next request on. This cannot be undone; "
        "the key stays listed as revoked."
    )
    list_display = (
        "name",
        "prefix",
        "status",
        "row_action",
        "scope_list",
        "org",
        "created_at",
        "last_used_at",
        "expires_at",
    )
    list_filter = (OrgListFilter,)
    list_select_related = ("org",)
    search_fields = ("name",)
    actions = ("revoke_selected",)
    fields = (
        "name",
        "prefix",
        "scope_list",
        "status",
        "org",
        "created_by",
        "created_at",
        "expires_at",
        "revoked_at",
        "last_used_at",
    )
    readonly_fields = fields

    def is_active(self, obj) -> bool:
        return obj.revoked_at is None

    def create(self, request, data):
        issued = services.api_key_create(
            org=data["org"],
            created_by=request.user,
            name=data["name"],
            scopes=list(data["scopes"]),
            expires_at=data.get("expires_at"),
            ip=client_ip(request),
        )
        return issued.api_key, issued.key

    def deactivate(self, request, obj):
        services.api_key_revoke(
            org=obj.org, api_key_id=obj.pk, revoked_by=request.user, ip=client_ip(request)
        )

    has_revoke_permission = SecretAdminMixin.has_deactivate_permission

    @admin.action(description="Revoke selected API keys", permissions=["revoke"])
    def revoke_selected(self, request, queryset):
        self.deactivate_selected(request, queryset)

    @admin.display(description="Scopes")
    def scope_list(self, obj):
        return ", ".join(obj.scopes)

    @admin.display(description="Status")
    def status(self, obj):
        if obj.revoked_at is not None:
            return "revoked"
        return "active" if obj.is_usable() else "expired"


# --- signing secrets ---------------------------------------------------------------------------


class SigningSecretCreateForm(OrgChoiceFormMixin, forms.Form):
    org = forms.ModelChoiceField(queryset=Organization.objects.none(), label="Organization")
    algorithm = forms.ChoiceField(
        choices=[
            ("HS256", "HS256 — a shared secret we generate (shown once)"),
            ("RS256", "RS256 — your RSA public key (2048 bits or more)"),
            ("ES256", "ES256 — your EC P-256 public key"),
        ],
        widget=forms.RadioSelect,
        initial="HS256",
    )
    public_key = forms.CharField(
        required=False,
        label="Public key (PEM)",
        widget=forms.Textarea(attrs={"rows": 8, "cols": 70, "spellcheck": "false"}),
        help_text="For RS256 and ES256 only: -----BEGIN PUBLIC KEY----- … Never a private key.",
    )

    def clean(self):
        cleaned = super().clean()
        algorithm, public_key = cleaned.get("algorithm"), (cleaned.get("public_key") or "").strip()
        if algorithm in ("RS256", "ES256") and not public_key:
            self.add_error("public_key", f"{algorithm} needs your public key in PEM.")
        if algorithm == "HS256" and public_key:
            self.add_error("public_key", "HS256 uses a secret we generate; leave this empty.")
        cleaned["public_key"] = public_key
        return cleaned


@admin.register(SigningSecret)
class SigningSecretAdmin(SecretAdminMixin, admin.ModelAdmin):
    """Operators add customer-token keys (HS256 secrets shown once), list kids and retire them."""

    add_form_class = SigningSecretCreateForm
    reveal_model = "signingsecret"
    add_note = (
        "An HS256 secret is shown once, on the next page; afterwards only its kid is listed. "
        "A public key is not a secret: it stays readable on the key's page."
    )
    reveal_noun = "signing secret"
    confirm_verb = "Retire"
    deactivate_consequence = (
        "Customer-signed tokens with this kid are refused from now on. This cannot be undone."
    )
    list_display = ("kid", "algorithm", "status", "row_action", "org", "created_at", "retired_at")
    list_filter = ("algorithm", OrgListFilter)
    list_select_related = ("org",)
    search_fields = ("kid",)
    actions = ("retire_selected",)

    def get_fields(self, request, obj=None):
        fields = ["kid", "algorithm", "status", "org", "created_by", "created_at", "retired_at"]
        if obj is not None and obj.public_key:
            fields.append("public_key_pem")
        return fields

    def get_readonly_fields(self, request, obj=None):
        return self.get_fields(request, obj)

    def is_active(self, obj) -> bool:
        return obj.retired_at is None

    def create(self, request, data):
        if data["algorithm"] == SigningSecret.Algorithm.HS256:
            issued = services.signing_secret_create_shared(
                org=data["org"], created_by=request.user, ip=client_ip(request)
            )
            return issued.signing_secret, issued.secret
        created = services.signing_secret_create_public_key(
            org=data["org"],
            created_by=request.user,
            algorithm=data["algorithm"],
            public_key=data["public_key"],
            ip=client_ip(request),
        )
        return created, None

    def deactivate(self, request, obj):
        services.signing_secret_retire(
            org=obj.org, kid=obj.kid, retired_by=request.user, ip=client_ip(request)
        )

    has_retire_permission = SecretAdminMixin.has_deactivate_permission

    @admin.action(description="Retire selected signing secrets", permissions=["retire"])
    def retire_selected(self, request, queryset):
        self.deactivate_selected(request, queryset)

    @admin.display(description="Status")
    def status(self, obj):
        return "retired" if obj.retired_at else "active"

    @admin.display(description="Public key")
    def public_key_pem(self, obj):
        return format_html("<pre>{}</pre>", obj.public_key)


# --- audit trail (read-only) -----------------------------------------------------------------

from identity.models import AuditEvent  # noqa: E402  (kept with its appended block)


@admin.register(AuditEvent)
class AuditEventAdmin(OrgScopedAdminMixin, admin.ModelAdmin):
    """Operators read their orgs' audit trail; nobody adds, changes or deletes an event."""

    view_roles = OPERATOR_ROLES
    list_display = ("created_at", "action", "target", "actor_user", "actor_api_key", "ip", "org")
    list_filter = ("action", OrgListFilter)
    list_select_related = ("org", "actor_user", "actor_api_key")
    search_fields = ("target",)
    fields = (
        "created_at",
        "action",
        "org",
        "actor_user",
        "actor_api_key",
        "target",
        "ip",
        "details",
    )
    readonly_fields = fields
