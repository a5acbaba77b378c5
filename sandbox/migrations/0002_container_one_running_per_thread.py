from django.db import migrations, models


def expire_duplicates(apps, schema_editor):
    """Records written before the constraint: of a thread's running ones, only the newest stays running."""
    Container = apps.get_model("sandbox", "Container")
    newest: dict[tuple[int, str], int] = {}
    stale = []
    for pk, key in ((c.pk, (c.project_id, c.thread_id)) for c in
                    Container.objects.filter(status="running").order_by("-created_at", "-pk").only("project", "thread_id")):
        if key in newest:
            stale.append(pk)
        else:
            newest[key] = pk
    Container.objects.filter(pk__in=stale).update(status="expired")


class Migration(migrations.Migration):

    dependencies = [
        ("sandbox", "0001_initial"),
    ]

    operations = [
        migrations.RunPython(expire_duplicates, migrations.RunPython.noop),
        migrations.AddConstraint(
            model_name="container",
            constraint=models.UniqueConstraint(condition=models.Q(("status", "running")), fields=("project", "thread_id"),
                                               name="sandbox_container_one_running_per_thread"),
        ),
    ]
