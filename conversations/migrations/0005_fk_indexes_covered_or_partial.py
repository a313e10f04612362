"""Drop the foreign-key indexes composite indexes already start with; index nullable keys only
where set (a message has one sender, most conversations no assignee)."""

import django.db.models.deletion
from django.conf import settings
from django.db import migrations, models

from config.migration_operations import ForeignKeyIndexDrop


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0004_fk_indexes_covered'),
        ('conversations', '0004_conversation_last_message'),
        ('identity', '0002_auditevent'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        ForeignKeyIndexDrop(
            model_name='conversation',
            name='assignee',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='assigned_conversations', to=settings.AUTH_USER_MODEL),
        ),
        ForeignKeyIndexDrop(
            model_name='conversation',
            name='device',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='conversations', to='contacts.device'),
        ),
        ForeignKeyIndexDrop(
            model_name='conversation',
            name='org',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='conversations', to='identity.organization'),
        ),
        ForeignKeyIndexDrop(
            model_name='message',
            name='conversation',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='messages', to='conversations.conversation'),
        ),
        ForeignKeyIndexDrop(
            model_name='message',
            name='sender_api_key',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='identity.apikey'),
        ),
        ForeignKeyIndexDrop(
            model_name='message',
            name='sender_contact',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to='contacts.contact'),
        ),
        ForeignKeyIndexDrop(
            model_name='message',
            name='sender_user',
            field=models.ForeignKey(blank=True, db_index=False, null=True, on_delete=django.db.models.deletion.SET_NULL, related_name='+', to=settings.AUTH_USER_MODEL),
        ),
        migrations.AddIndex(
            model_name='conversation',
            index=models.Index(condition=models.Q(('assignee__isnull', False)), fields=['assignee'], name='conv_assignee'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('sender_user__isnull', False)), fields=['sender_user'], name='message_sender_user'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('sender_contact__isnull', False)), fields=['sender_contact'], name='message_sender_contact'),
        ),
        migrations.AddIndex(
            model_name='message',
            index=models.Index(condition=models.Q(('sender_api_key__isnull', False)), fields=['sender_api_key'], name='message_sender_api_key'),
        ),
    ]
