"""Reads of the audit trail, scoped to one org (the writes are `services.audit_record`)."""

from django.db.models import QuerySet

from identity.models import AuditEvent, Organization


def audit_events_for_org(*, org: Organization, action: str | None = None) -> QuerySet[AuditEvent]:
    """An org's audit events, newest first, optionally one action; actors in the same query."""
    events = AuditEvent.objects.filter(org=org).select_related("actor_user", "actor_api_key")
    if action:
        events = events.filter(action=action)
    return events.order_by("-created_at", "-pk")
