"""Full-text search index on Postgres (nothing on SQLite, the embedded dev database).

A GIN index over the same expression registry.services.search uses for an adapter's own
text (description, backbone, method), so ``q`` searches use it. Created through the schema
editor without touching the model state, so the models need no change.
"""

from django.db import migrations

INDEX_NAME = "adapter_search_doc"
FIELDS = ("description", "model_name", "method")  # = registry.services.search.ADAPTER_DOC_FIELDS


def _index():
    from django.contrib.postgres.indexes import GinIndex
    from django.contrib.postgres.search import SearchVector

    return GinIndex(SearchVector(*FIELDS, config="english"), name=INDEX_NAME)


def create(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.add_index(apps.get_model("registry", "Adapter"), _index())


def drop(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.remove_index(apps.get_model("registry", "Adapter"), _index())


class Migration(migrations.Migration):
    dependencies = [("registry", "0001_initial")]

    operations = [migrations.RunPython(create, drop)]
