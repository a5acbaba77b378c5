"""The project foreign keys now point at tenancy.Project: the same table (assistants_project), so only
Django's state changes; the columns and their constraints stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


def project_fk(**kwargs):
    return models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenancy.project",
                             **kwargs)


class Migration(migrations.Migration):

    dependencies = [
        ("runs", "0001_initial"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="run", name="project", field=project_fk()),
                migrations.AlterField(model_name="runstep", name="project", field=project_fk()),
            ],
            database_operations=[],
        ),
    ]
