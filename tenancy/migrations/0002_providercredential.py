import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("tenancy", "0001_initial")]

    operations = [
        migrations.CreateModel(
            name="ProviderCredential",
            fields=[
                ("id", models.BigAutoField(auto_created=True, primary_key=True, serialize=False, verbose_name="ID")),
                ("provider", models.CharField(help_text="LiteLLM provider name, e.g. openai, anthropic, azure.",
                                              max_length=64)),
                ("sealed", models.TextField(editable=False)),
                ("param_names", models.JSONField(default=list, editable=False)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                ("updated_at", models.DateTimeField(auto_now=True)),
                ("project", models.ForeignKey(on_delete=django.db.models.deletion.CASCADE,
                                              related_name="provider_credentials", to="tenancy.project")),
            ],
            options={
                "constraints": [models.UniqueConstraint(fields=("project", "provider"),
                                                        name="tenancy_provider_credential")],
            },
        ),
    ]
