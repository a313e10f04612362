"""Indexes and statistics for the agents' contact search at scale (issue #9).

The trigram index is PostgreSQL-only and kept out of the model state (SQLite has no GIN and would
fail to rebuild the table with it), so it is raw SQL that does nothing on other databases. On a
large live table, build it first by hand with `CREATE INDEX CONCURRENTLY contact_name_trgm ...`
(same definition); `IF NOT EXISTS` then makes this migration skip it.
"""

from django.db import migrations, models


class PostgreSQLOnlySQL(migrations.RunSQL):
    """RunSQL that runs on PostgreSQL and is a no-op anywhere else."""

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_forwards(app_label, schema_editor, from_state, to_state)

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        if schema_editor.connection.vendor == "postgresql":
            super().database_backwards(app_label, schema_editor, from_state, to_state)


class Migration(migrations.Migration):

    dependencies = [
        ("contacts", "0002_initial"),
    ]

    operations = [
        migrations.RemoveIndex(
            model_name="contact",
            name="contact_org_email",
        ),
        migrations.AddIndex(
            model_name="contact",
            index=models.Index(
                fields=["org", "email"],
                name="contact_org_email_prefix",
                opclasses=["uuid_ops", "varchar_pattern_ops"],
            ),
        ),
        # pg_trgm is a trusted extension (PostgreSQL 13+): the database owner may create it. It is
        # left in place on the way back, since other objects may come to rely on it.
        PostgreSQLOnlySQL(
            sql="CREATE EXTENSION IF NOT EXISTS pg_trgm",
            reverse_sql=migrations.RunSQL.noop,
        ),
        # contacts_for_org's `name__icontains` is `UPPER("name"::text) LIKE UPPER('%…%')`.
        PostgreSQLOnlySQL(
            sql=(
                "CREATE INDEX IF NOT EXISTS contact_name_trgm ON contacts_contact "
                "USING gin (UPPER(name) gin_trgm_ops)"
            ),
            reverse_sql="DROP INDEX IF EXISTS contact_name_trgm",
        ),
        # The planner estimates `LIKE` by matching the pattern against the sampled histogram and
        # most common values: with the default 100 entries a prefix held by 0.01 % of contacts is
        # guessed at 0.01 % or at 1 %, and at 1 % it walks the org's contacts newest first instead
        # of using the indexes above (over 500 ms on 1M contacts). Emails are nearly all distinct,
        # so they need the finest histogram; names repeat, and their common values carry most of
        # the estimate. ANALYZE at once: the new expression index has no statistics yet.
        PostgreSQLOnlySQL(
            sql=[
                "ALTER TABLE contacts_contact ALTER COLUMN email SET STATISTICS 10000",
                "ALTER INDEX contact_name_trgm ALTER COLUMN 1 SET STATISTICS 1000",
                "ANALYZE contacts_contact",
            ],
            reverse_sql=["ALTER TABLE contacts_contact ALTER COLUMN email SET STATISTICS -1"],
        ),
    ]
