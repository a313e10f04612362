"""Console pages. Every page is scoped to one org the agent belongs to; anything else is a 404.

Every view is `never_cache` (`Cache-Control: no-store`), as the admin's are: the pages show
visitors' details, and a stored page would come back from the browser's cache, or from its
back/forward cache when Back is pressed after "Sign out". Sign-in and sign-out are Django's views,
which are `never_cache` already.
"""

import uuid

from django.contrib.auth.decorators import login_required
from django.contrib.auth.views import LoginView
from django.core.exceptions import ValidationError
from django.core.paginator import Paginator
from django.http import Http404, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_POST, require_safe

from config.exceptions import ApplicationError, NotFound
from contacts.admin import custom_data_rows, sender_auth_panel
from contacts.selectors import contact_for_org
from conversations import selectors, services
from conversations.admin import side_panel_context
from conversations.api.serializers import MAX_BIGINT
from conversations.console.forms import ConsoleLoginForm, InboxFilterForm, ReplyForm
from identity.admin import lockout_status
from identity.models import Membership
from identity.selectors import membership_for

ORG_SESSION_KEY = "console_org_id"
INBOX_PAGE_SIZE = 25
CONTACT_CONVERSATIONS_LIMIT = 50


class ConsoleLoginView(LoginView):
    template_name = "console/login.html"
    authentication_form = ConsoleLoginForm
    redirect_authenticated_user = True

    def form_invalid(self, form):
        return lockout_status(super().form_invalid(form))


def _found(selector, **kwargs):
    """Call a selector; its NotFound (another org's or unknown id) becomes Django's 404."""
    try:
        return selector(**kwargs)
    except NotFound as exc:
        raise Http404 from exc


def _membership(request) -> Membership | None:
    """The org this page is about: `?org=`, else the last one chosen, else the agent's first.

    `?org=` naming an org the agent does not belong to is a 404, never a fallback.
    """
    wanted = request.GET.get("org")
    if wanted:
        try:
            org_id = uuid.UUID(wanted)
        except ValueError as exc:
            raise Http404 from exc
        membership = _found(membership_for, user=request.user, org_id=org_id)
        # Only a change is saved: assigning the same value would write the session row on every
        # page (and slide the sign-in's 12 hours along with it).
        if request.session.get(ORG_SESSION_KEY) != str(org_id):
            request.session[ORG_SESSION_KEY] = str(org_id)
        return membership
    remembered = request.session.get(ORG_SESSION_KEY)
    if remembered:
        membership = (
            Membership.objects.in_force()
            .select_related("org")
            .filter(user=request.user, org_id=remembered)
            .first()
        )
        if membership is not None:
            return membership
    return (
        Membership.objects.in_force()
        .select_related("org")
        .filter(user=request.user)
        .order_by("org__name", "org_id")
        .first()
    )


def _org_url(name: str, membership: Membership, *args, **query) -> str:
    return f"{reverse(name, args=args)}?{urlencode({'org': membership.org_id, **query})}"


@never_cache
@login_required
@require_safe
def inbox(request):
    membership = _membership(request)
    if membership is None:
        return render(request, "console/no_org.html", status=200)
    memberships = (
        Membership.objects.in_force()
        .select_related("org")
        .filter(user=request.user)
        .order_by("org__name")
    )
    filter_form = InboxFilterForm(request.GET)
    conversations = selectors.conversation_inbox(org=membership.org, **filter_form.filters())
    page = Paginator(conversations, INBOX_PAGE_SIZE).get_page(request.GET.get("page"))
    query = {k: v for k, v in filter_form.filters().items() if v}
    return render(
        request,
        "console/inbox.html",
        {
            "membership": membership,
            "org": membership.org,
            "memberships": memberships,
            "filter_form": filter_form,
            "page": page,
            "page_query": urlencode({"org": membership.org_id, **query}),
        },
    )


def _after_id(raw: str | None) -> int | None:
    """`?after=` as a message id, or None (the thread's first page) for anything else.

    ASCII digits only: `str.isdigit` also accepts "²" (which `int` refuses) and "١٢" (which `int`
    reads as 12). The length check comes first so `int` never parses a huge string, and an id past
    the bigint range would overflow the query.
    """
    if not raw or len(raw) > len(str(MAX_BIGINT)) or not (raw.isascii() and raw.isdigit()):
        return None
    after_id = int(raw)
    return after_id if after_id <= MAX_BIGINT else None


def _conversation_page(request, membership, conversation, form, status=200):
    after_id = _after_id(request.GET.get("after"))
    thread = list(selectors.messages_for_conversation(conversation=conversation, after_id=after_id))
    contact_url = _org_url("console:contact", membership, conversation.contact_id)
    context = {
        "membership": membership,
        "org": membership.org,
        "conversation": conversation,
        "thread": thread,
        "has_newer": len(thread) >= selectors.THREAD_PAGE_SIZE,
        "newer_url": _org_url(
            "console:conversation", membership, conversation.pk, after=thread[-1].pk
        )
        if thread
        else "",
        "form": form,
        "inbox_url": _org_url("console:inbox", membership),
        **side_panel_context(conversation, contact_url=contact_url, with_answers=True),
    }
    return render(request, "console/conversation.html", context, status=status)


@never_cache
@login_required
@require_safe
def conversation_detail(request, conversation_id):
    membership = _membership(request)
    if membership is None:
        raise Http404
    conversation = _found(
        selectors.conversation_for_org, org=membership.org, conversation_id=conversation_id
    )
    return _conversation_page(request, membership, conversation, ReplyForm())


@never_cache
@login_required
@require_POST
def conversation_reply(request, conversation_id):
    membership = _membership(request)
    if membership is None:
        raise Http404
    conversation = _found(
        selectors.conversation_for_org, org=membership.org, conversation_id=conversation_id
    )
    form = ReplyForm(request.POST)
    if form.is_valid():
        try:
            message = services.message_post_agent(
                org=membership.org,
                conversation=conversation,
                text=form.cleaned_data["text"],
                user=request.user,
            )
        except ValidationError as exc:
            form.add_error("text", exc.message_dict.get("text", exc.messages))
        except ApplicationError as exc:
            form.add_error(None, str(exc.detail))
        else:
            url = _org_url("console:conversation", membership, conversation.pk)
            return HttpResponseRedirect(f"{url}#m{message.pk}")
    return _conversation_page(request, membership, conversation, form, status=400)


@never_cache
@login_required
@require_POST
def conversation_close(request, conversation_id):
    membership = _membership(request)
    if membership is None:
        raise Http404
    conversation = _found(
        selectors.conversation_for_org, org=membership.org, conversation_id=conversation_id
    )
    services.conversation_close(org=membership.org, conversation=conversation, user=request.user)
    return HttpResponseRedirect(_org_url("console:conversation", membership, conversation.pk))


@never_cache
@login_required
@require_safe
def contact_detail(request, contact_id):
    membership = _membership(request)
    if membership is None:
        raise Http404
    contact = _found(contact_for_org, org=membership.org, contact_id=contact_id)
    conversations = selectors.conversation_inbox(org=membership.org).filter(contact=contact)
    return render(
        request,
        "console/contact.html",
        {
            "membership": membership,
            "org": membership.org,
            "contact": contact,
            "panel": sender_auth_panel(contact.sender_auth_info),
            "verified_rows": custom_data_rows(contact.custom_data),
            "unverified_rows": custom_data_rows(contact.non_verified_custom_data),
            "conversations": conversations[:CONTACT_CONVERSATIONS_LIMIT],
            "inbox_url": _org_url("console:inbox", membership),
        },
    )
