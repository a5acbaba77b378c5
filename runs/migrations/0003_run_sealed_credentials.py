from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("runs", "0002_project_in_tenancy")]

    operations = [
        migrations.AddField(model_name="run", name="sealed_credentials",
                            field=models.TextField(editable=False, null=True)),
    ]
