"""Migration operations Django's own would run too slowly on a large table."""

from django.db import migrations


class ForeignKeyIndexDrop(migrations.AlterField):
    """`AlterField` to a foreign key with `db_index=False` that drops only the key's own index.

    Django's `AlterField` drops the foreign key constraint, drops the index and adds the
    constraint back; adding it back checks every row while holding the table locked against
    writes, which on a table of millions of messages stalls the widget for the length of the
    check. The constraint does not change here, so this only drops the single-column index
    Django created for the key (found by introspection, whatever its generated name; an index
    the model declares in `Meta.indexes` is never touched). Reversed, it creates that index again.
    """

    def database_forwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        column = model._meta.get_field(self.name).column
        declared = {index.name for index in model._meta.indexes}
        with schema_editor.connection.cursor() as cursor:
            constraints = schema_editor.connection.introspection.get_constraints(
                cursor, model._meta.db_table
            )
        for name, info in constraints.items():
            if (
                info["index"]
                and info["columns"] == [column]
                and not (info["unique"] or info["primary_key"] or info["foreign_key"])
                and name not in declared
            ):
                schema_editor.execute(
                    schema_editor.sql_delete_index % {"name": schema_editor.quote_name(name)}
                )

    def database_backwards(self, app_label, schema_editor, from_state, to_state):
        model = to_state.apps.get_model(app_label, self.model_name)
        if not self.allow_migrate_model(schema_editor.connection.alias, model):
            return
        # The statement and name Django's own AlterField would use to add the key's index.
        field = model._meta.get_field(self.name)
        schema_editor.execute(schema_editor._create_index_sql(model, fields=[field]))

    def describe(self):
        return f"Drop the index of foreign key {self.name} on {self.model_name}"
