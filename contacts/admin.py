"""Contacts in the admin: read-only, scoped to the agent's orgs, with the shield and senderAuthInfo.

The panel helpers here (`sender_auth_panel`, `custom_data_rows`) also feed the agent console, so
the admin and the console describe identity in exactly the same words.
"""

import json
from datetime import UTC, datetime

from django.contrib import admin
from django.template.loader import render_to_string
from django.utils.dateparse import parse_datetime
from django.utils.html import format_html

from contacts.models import Contact
from identity.admin_scoping import OrgListFilter, OrgScopedAdminMixin

METHOD_WORDS = {
    "api_key": "Verified by the customer's backend with an API key",
    "custom_jwt": "Customer-signed token (custom JWT)",
    "collect_form": "Collected by the chat form",
    "browser": "Given by the web page (browser)",
    "anonymous": "Anonymous",
}
AUTH_TYPE_TONES = {"VERIFIED": "verified", "NON_VERIFIED": "unverified", "ANONYMOUS": "anonymous"}
CLAIM_NAMES = ("iss", "sub", "aud", "iat", "exp", "jti")
TIMESTAMP_CLAIMS = frozenset({"iat", "exp"})


def _as_dict(value) -> dict:
    return value if isinstance(value, dict) else {}


def _timestamp(value) -> datetime | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    try:
        return datetime.fromtimestamp(value, tz=UTC)
    except (OverflowError, OSError, ValueError):
        return None


def _claim_text(value):
    if value is None:
        return None
    if isinstance(value, list):
        return ", ".join(str(item) for item in value)
    return str(value)


def sender_auth_panel(info) -> dict:
    """What the senderAuthInfo panel shows, in words: never the raw JSON."""
    info = _as_dict(info)
    auth_var = _as_dict(info.get("authVar"))
    token = _as_dict(auth_var.get("token"))
    auth_type = str(info.get("authType") or "")
    method = str(info.get("method") or "")
    verified_at_text = str(info.get("verifiedAt") or "")
    claims = [
        {
            "name": name,
            "value": _claim_text(token.get(name)),
            "when": _timestamp(token.get(name)) if name in TIMESTAMP_CLAIMS else None,
        }
        for name in CLAIM_NAMES
        if name in token
    ]
    return {
        "recorded": bool(info),
        "auth_type": auth_type,
        "tone": AUTH_TYPE_TONES.get(auth_type, "anonymous"),
        "method": method,
        "method_words": METHOD_WORDS.get(method, "Not recorded"),
        "verified_at": parse_datetime(verified_at_text) if verified_at_text else None,
        "verified_at_text": verified_at_text,
        "key_id": auth_var.get("keyId") or "",
        "claims": claims,
    }


def custom_data_rows(data) -> list[dict]:
    """Key/value rows for a custom-data dict; nested values become indented JSON (escaped later)."""
    rows = []
    for key, value in _as_dict(data).items():
        if isinstance(value, dict | list):
            text = json.dumps(value, indent=2, ensure_ascii=False, sort_keys=True)
            rows.append({"key": key, "value": text, "block": True})
        elif isinstance(value, str):
            rows.append({"key": key, "value": value, "block": False})
        else:
            rows.append({"key": key, "value": json.dumps(value), "block": False})
    return rows


VERIFIED_DATA_HEADING = "Verified custom data — set by your backend"
UNVERIFIED_DATA_HEADING = "Unverified custom data — sent by the browser, do not trust"


def render_shield(contact: Contact) -> str:
    return render_to_string("partials/shield.html") if contact.has_shield else ""


def render_trust_level(contact: Contact) -> str:
    return render_to_string("partials/trust_level.html", {"contact": contact})


def render_contact_label(contact: Contact, *, with_shield: bool = False) -> str:
    return render_to_string(
        "partials/contact_label.html", {"contact": contact, "with_shield": with_shield}
    )


def render_sender_auth_panel(contact: Contact, info=None) -> str:
    panel = sender_auth_panel(contact.sender_auth_info if info is None else info)
    return render_to_string("partials/sender_auth_info.html", {"contact": contact, "panel": panel})


def render_custom_data(contact: Contact, *, verified: bool) -> str:
    data = contact.custom_data if verified else contact.non_verified_custom_data
    return render_to_string(
        "partials/custom_data.html", {"rows": custom_data_rows(data), "verified": verified}
    )


@admin.register(Contact)
class ContactAdmin(OrgScopedAdminMixin, admin.ModelAdmin):
    """Every member reads their orgs' contacts; nobody edits them here (the API writes them)."""

    list_display = (
        "shield",
        "contact_name",
        "email",
        "trust_level",
        "user_id",
        "org",
        "last_seen_at",
    )
    list_display_links = ("contact_name",)
    list_filter = ("trust", OrgListFilter)
    search_fields = ("name", "email", "user_id")
    list_select_related = ("org",)
    ordering = ("-last_seen_at",)
    show_full_result_count = False
    list_per_page = 50
    fieldsets = (
        (
            "Contact",
            {
                "fields": (
                    "identity",
                    "trust_level",
                    "contact_email",
                    "phone",
                    "user_id",
                    "language",
                    "org",
                    "verified_at",
                    "first_seen_at",
                    "last_seen_at",
                )
            },
        ),
        (
            "How identity was established (senderAuthInfo)",
            {"fields": ("sender_auth_info_panel",), "classes": ("cs-fullwidth",)},
        ),
        (
            VERIFIED_DATA_HEADING,
            {"fields": ("verified_custom_data",), "classes": ("cs-fullwidth",)},
        ),
        (
            UNVERIFIED_DATA_HEADING,
            {
                "fields": ("unverified_custom_data",),
                "classes": ("cs-fullwidth", "cs-unverified-set"),
            },
        ),
    )
    readonly_fields = (
        "identity",
        "trust_level",
        "contact_email",
        "phone",
        "user_id",
        "language",
        "org",
        "verified_at",
        "first_seen_at",
        "last_seen_at",
        "sender_auth_info_panel",
        "verified_custom_data",
        "unverified_custom_data",
    )

    class Media:
        css = {"all": ("console/panel.css",)}

    @admin.display(description="", ordering="trust", empty_value="")
    def shield(self, obj: Contact) -> str:
        return render_shield(obj)

    @admin.display(description="Contact", ordering="name")
    def contact_name(self, obj: Contact) -> str:
        return render_contact_label(obj)

    @admin.display(description="Contact")
    def identity(self, obj: Contact) -> str:
        return render_contact_label(obj, with_shield=True)

    @admin.display(description="Trust", ordering="trust")
    def trust_level(self, obj: Contact) -> str:
        return render_trust_level(obj)

    @admin.display(description="Email")
    def contact_email(self, obj: Contact) -> str:
        if obj.email and obj.trust == Contact.Trust.NON_VERIFIED:
            return format_html('{} <span class="cs-unverified">unverified</span>', obj.email)
        return obj.email or "-"

    @admin.display(description="senderAuthInfo")
    def sender_auth_info_panel(self, obj: Contact) -> str:
        return render_sender_auth_panel(obj)

    @admin.display(description="Verified custom data")
    def verified_custom_data(self, obj: Contact) -> str:
        return render_custom_data(obj, verified=True)

    @admin.display(description="Unverified custom data")
    def unverified_custom_data(self, obj: Contact) -> str:
        return render_custom_data(obj, verified=False)
