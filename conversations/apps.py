from django.apps import AppConfig


class ConversationsConfig(AppConfig):
    default_auto_field = "django.db.models.BigAutoField"
    name = "conversations"

    def ready(self):
        from conversations.services import member_conversations_unassign
        from identity.signals import membership_removed

        membership_removed.connect(
            member_conversations_unassign, dispatch_uid="conversations.member_unassign"
        )
