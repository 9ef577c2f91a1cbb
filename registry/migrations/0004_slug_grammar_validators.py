"""The slugs of organisations, tasks and subtasks are checked by the identifier grammar itself
(adapters_client.rules.is_slug), which also refuses '..'. Validators only: no schema change.

It follows 0003_validation_backbones_samples.
"""

from django.db import migrations, models

import registry.models


class Migration(migrations.Migration):

    dependencies = [
        ("registry", "0003_validation_backbones_samples"),
    ]

    operations = [
        migrations.AlterField(
            model_name="organisation",
            name="slug",
            field=models.CharField(max_length=64, unique=True, validators=[registry.models.slug_validator]),
        ),
        migrations.AlterField(
            model_name="task",
            name="slug",
            field=models.CharField(max_length=64, unique=True, validators=[registry.models.slug_validator]),
        ),
        migrations.AlterField(
            model_name="subtask",
            name="slug",
            field=models.CharField(max_length=64, validators=[registry.models.slug_validator]),
        ),
    ]
