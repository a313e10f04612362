"""Drop the contact's org index and the device's contact index: composite indexes start with them."""

import django.db.models.deletion
from django.db import migrations, models

from config.migration_operations import ForeignKeyIndexDrop


class Migration(migrations.Migration):

    dependencies = [
        ('contacts', '0003_contact_search_indexes'),
        ('identity', '0002_auditevent'),
    ]

    operations = [
        ForeignKeyIndexDrop(
            model_name='contact',
            name='org',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='contacts', to='identity.organization'),
        ),
        ForeignKeyIndexDrop(
            model_name='device',
            name='contact',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='devices', to='contacts.contact'),
        ),
    ]
