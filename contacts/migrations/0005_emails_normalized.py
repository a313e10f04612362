"""Contacts' emails in the one spelling every sign-in now stores (config.emails, 2026-11-30).

Earlier rows were trimmed and lower-cased only, so a verified customer with an `xn--`, full-width
or decomposed domain and no user_id would get a second contact on their next sign-in. Only such
rows are candidates (a non-ASCII character or an `xn--` label); a verified row whose normalized
address another verified contact of its org already holds is left as it is (the 409 rule), for
the org to resolve.
"""

from django.db import migrations
from django.db.models import Q

from config.emails import email_normalize

CANDIDATES = Q(email__contains="xn--") | Q(email__regex=r"[^\x00-\x7f]")


def normalize(apps, schema_editor):
    Contact = apps.get_model("contacts", "Contact")
    rows = Contact.objects.filter(CANDIDATES).only("pk", "org_id", "trust", "email")
    for contact in rows.iterator():
        email = email_normalize(contact.email)
        if email == contact.email:
            continue
        taken = Contact.objects.filter(org_id=contact.org_id, trust="verified", email=email)
        if contact.trust == "verified" and taken.exists():
            continue
        Contact.objects.filter(pk=contact.pk).update(email=email)


class Migration(migrations.Migration):
    dependencies = [("contacts", "0004_fk_indexes_covered")]

    operations = [migrations.RunPython(normalize, migrations.RunPython.noop, elidable=True)]
