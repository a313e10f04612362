"""Conversations in the admin: the inbox with shields; each thread beside the contact panel."""

from django.contrib import admin, messages
from django.template.loader import render_to_string
from django.urls import reverse

from contacts.admin import (
    custom_data_rows,
    render_contact_label,
    render_shield,
    sender_auth_panel,
)
from conversations import selectors, services
from conversations.models import Conversation
from identity.admin_scoping import ALL_ROLES, OrgListFilter, OrgScopedAdminMixin


def side_panel_context(
    conversation: Conversation, *, contact_url: str = "", with_answers: bool = False
) -> dict:
    """The template context of `partials/contact_side_panel.html` for one conversation; with
    `with_answers`, its chat form answers too (the admin lists them among its own fields)."""
    contact = conversation.contact
    return {
        "contact": contact,
        "panel": sender_auth_panel(contact.sender_auth_info),
        "opened_as": sender_auth_panel(conversation.sender_auth_info),
        "verified_rows": custom_data_rows(contact.custom_data),
        "unverified_rows": custom_data_rows(contact.non_verified_custom_data),
        "answer_rows": custom_data_rows(conversation.fields) if with_answers else [],
        "contact_url": contact_url,
    }


@admin.register(Conversation)
class ConversationAdmin(OrgScopedAdminMixin, admin.ModelAdmin):
    """Members read their orgs' conversations and may close them; replies go through the console."""

    list_display = ("shield", "contact_label", "status", "last_message_at", "org", "created_at")
    list_display_links = ("contact_label",)
    list_filter = ("status", ("contact__trust", admin.ChoicesFieldListFilter), OrgListFilter)
    search_fields = ("contact__name", "contact__email")
    list_select_related = ("contact", "org")
    ordering = ("-last_message_at",)
    show_full_result_count = False
    list_per_page = 50
    actions = ("close_selected",)
    change_form_template = "admin/conversations/conversation/change_form.html"
    fields = (
        "contact_identity",
        "status",
        "org",
        "external_id",
        "created_verified",
        "assignee",
        "created_at",
        "last_message_at",
        "closed_at",
        "form_answers",
    )
    readonly_fields = fields

    class Media:
        css = {"all": ("console/panel.css",)}

    @admin.display(description="", ordering="contact__trust", empty_value="")
    def shield(self, obj: Conversation) -> str:
        return render_shield(obj.contact)

    @admin.display(description="Contact", ordering="contact__name")
    def contact_label(self, obj: Conversation) -> str:
        return render_contact_label(obj.contact)

    @admin.display(description="Contact")
    def contact_identity(self, obj: Conversation) -> str:
        return render_contact_label(obj.contact, with_shield=True)

    @admin.display(description="Chat form answers")
    def form_answers(self, obj: Conversation) -> str:
        if not obj.fields:
            return "-"
        # Answers to extraDataCollectionFields come from the browser: shown as unverified.
        return render_to_string(
            "partials/custom_data.html",
            {"rows": custom_data_rows(obj.fields), "verified": False},
        )

    def has_close_permission(self, request):
        return self._allowed(request, ALL_ROLES)

    @admin.action(description="Close selected conversations", permissions=["close"])
    def close_selected(self, request, queryset):
        closed = 0
        for conversation in queryset.select_related("org"):
            services.conversation_close(
                org=conversation.org, conversation=conversation, user=request.user
            )
            closed += 1
        self.message_user(request, f"Closed {closed} conversation(s).", messages.SUCCESS)

    def render_change_form(self, request, context, add=False, change=False, form_url="", obj=None):
        if obj is not None:
            context["thread"] = list(selectors.messages_for_conversation(conversation=obj))
            context["thread_limit"] = selectors.THREAD_PAGE_SIZE
            contact_url = reverse("admin:contacts_contact_change", args=[obj.contact_id])
            context.update(side_panel_context(obj, contact_url=contact_url))
        return super().render_change_form(request, context, add, change, form_url, obj)
