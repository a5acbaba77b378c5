"""Project and ApiKey now live in the tenancy app (tenancy 0001), on the same tables: this only moves
Django's state. It runs after every other app's project foreign key points at tenancy.Project, so no
state ever refers to a model that is gone."""

import django.db.models.deletion
from django.db import migrations, models


def project_fk(**kwargs):
    return models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenancy.project",
                             **kwargs)


class Migration(migrations.Migration):

    dependencies = [
        ("assistants", "0001_initial"),
        ("tenancy", "0001_initial"),
        ("files", "0003_project_in_tenancy"),
        ("retrieval", "0007_project_in_tenancy"),
        ("runs", "0002_project_in_tenancy"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="assistant", name="project", field=project_fk()),
                migrations.AlterField(model_name="thread", name="project", field=project_fk()),
                migrations.AlterField(model_name="message", name="project", field=project_fk()),
                migrations.DeleteModel(name="ApiKey"),
                migrations.DeleteModel(name="Project"),
            ],
            database_operations=[],
        ),
    ]
