"""The project foreign keys now point at tenancy.Project: the same table (assistants_project), so only
Django's state changes; the columns and their constraints stay as they are."""

import django.db.models.deletion
from django.db import migrations, models


def project_fk(**kwargs):
    return models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="+", to="tenancy.project",
                             **kwargs)


class Migration(migrations.Migration):

    dependencies = [
        ("retrieval", "0006_chunk_vectors"),
        ("tenancy", "0001_initial"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.AlterField(model_name="chunk", name="project", field=project_fk(db_index=False)),
                migrations.AlterField(model_name="filebatch", name="project", field=project_fk()),
                migrations.AlterField(model_name="vectorstore", name="project", field=project_fk()),
                migrations.AlterField(model_name="vectorstorefile", name="project", field=project_fk(db_index=False)),
            ],
            database_operations=[],
        ),
    ]
