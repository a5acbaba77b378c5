from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [("retrieval", "0008_ingestion_lifecycle")]

    operations = [
        migrations.AddField(model_name="vectorstorefile", name="sealed_credentials",
                            field=models.TextField(editable=False, null=True)),
    ]
