import django.db.models.deletion
from django.db import migrations, models

# Every existing conversation points at its newest message (by id, as the lists always ordered).
# Plain SQL that SQLite and PostgreSQL both run; one pass over the (conversation, id) index.
BACKFILL = """
UPDATE conversations_conversation
SET last_message_id = (
    SELECT MAX(m.id) FROM conversations_message m
    WHERE m.conversation_id = conversations_conversation.id
)
"""


class Migration(migrations.Migration):
    dependencies = [
        ("conversations", "0003_message_sender_api_key"),
    ]

    operations = [
        migrations.AddField(
            model_name="conversation",
            name="last_message",
            field=models.ForeignKey(
                blank=True,
                null=True,
                on_delete=django.db.models.deletion.SET_NULL,
                related_name="+",
                to="conversations.message",
            ),
        ),
        migrations.RunSQL(BACKFILL, reverse_sql=migrations.RunSQL.noop, elidable=False),
    ]
