"""Accounts' emails in the one spelling sign-in now looks up (config.emails, 2026-11-30).

Earlier rows were trimmed and lower-cased only, so an address with an `xn--`, full-width or
decomposed domain no longer matched its own sign-in. Only such rows are candidates (a non-ASCII
character or an `xn--` label); a row whose normalized address another account already holds is
left as it is, for a superuser to merge.
"""

from django.db import migrations
from django.db.models import Q

from config.emails import email_normalize

CANDIDATES = Q(email__contains="xn--") | Q(email__regex=r"[^\x00-\x7f]")


def normalize(apps, schema_editor):
    User = apps.get_model("identity", "User")
    for user in User.objects.filter(CANDIDATES).only("pk", "email").iterator():
        email = email_normalize(user.email)
        if email != user.email and not User.objects.filter(email=email).exists():
            User.objects.filter(pk=user.pk).update(email=email)


class Migration(migrations.Migration):
    dependencies = [("identity", "0002_auditevent")]

    operations = [migrations.RunPython(normalize, migrations.RunPython.noop, elidable=True)]
