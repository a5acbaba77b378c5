"""Project and ApiKey move here from ``assistants``: their tables (assistants_project, assistants_apikey) stay
as they are, so this only records the models in this app's state. A fresh database gets the tables from
assistants 0001, which runs first. assistants 0002 then drops them from that app's state.

The two content types are renamed to this app so admin permissions and the admin's history stay attached."""

import django.db.models.deletion
from django.db import migrations, models


def content_types_forward(apps, schema_editor):
    _move_content_types(apps, "assistants", "tenancy")


def content_types_backward(apps, schema_editor):
    _move_content_types(apps, "tenancy", "assistants")


def _move_content_types(apps, source, target):
    ContentType = apps.get_model("contenttypes", "ContentType")
    for model in ("project", "apikey"):
        if not ContentType.objects.filter(app_label=target, model=model).exists():
            ContentType.objects.filter(app_label=source, model=model).update(app_label=target)


class Migration(migrations.Migration):

    initial = True

    dependencies = [
        ("assistants", "0001_initial"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.CreateModel(
                    name="Project",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("public_id", models.CharField(editable=False, max_length=64, unique=True)),
                        ("name", models.CharField(max_length=200, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                    ],
                    options={"db_table": "assistants_project"},
                ),
                migrations.CreateModel(
                    name="ApiKey",
                    fields=[
                        ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                        ("name", models.CharField(blank=True, max_length=200)),
                        ("prefix", models.CharField(editable=False, max_length=16)),
                        ("key_hash", models.CharField(editable=False, max_length=64, unique=True)),
                        ("created_at", models.DateTimeField(auto_now_add=True)),
                        ("last_used_at", models.DateTimeField(blank=True, null=True)),
                        ("revoked_at", models.DateTimeField(blank=True, null=True)),
                        ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE, related_name="api_keys", to="tenancy.project")),
                    ],
                    options={"db_table": "assistants_apikey", "verbose_name": "API key"},
                ),
            ],
            database_operations=[],
        ),
        migrations.RunPython(content_types_forward, content_types_backward, elidable=True),
    ]
