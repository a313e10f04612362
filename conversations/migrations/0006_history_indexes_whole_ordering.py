"""The history indexes hold the page's whole ordering (created_at, id), so a prepared history
statement's generic plan reads a page in order. Each new index is built before the old one goes."""

from django.conf import settings
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0004_fk_indexes_covered'),
        ('conversations', '0005_fk_indexes_covered_or_partial'),
        ('identity', '0002_auditevent'),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [
        migrations.AddIndex(
            model_name='conversation',
            index=models.Index(fields=['device', '-created_at', '-id'], name='conv_device_newest'),
        ),
        migrations.AddIndex(
            model_name='conversation',
            index=models.Index(condition=models.Q(('created_verified', True)), fields=['contact', '-created_at', '-id'], name='conv_contact_verified_newest'),
        ),
        migrations.RemoveIndex(
            model_name='conversation',
            name='conv_device_created',
        ),
        migrations.RemoveIndex(
            model_name='conversation',
            name='conv_contact_verified_created',
        ),
    ]
