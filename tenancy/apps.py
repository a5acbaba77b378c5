from django.apps import AppConfig


class TenancyConfig(AppConfig):
    name = "tenancy"
    verbose_name = "Projects and API keys"

    def ready(self):
        from django.db.models.signals import post_delete, post_save

        from tenancy.models import ApiKey, Project

        # Any change to a key (revoked in the admin, moved, deleted, its project deleted) drops it from the
        # authentication cache.
        post_save.connect(_forget_key, sender=ApiKey, dispatch_uid="api_key_cache_forget_save")
        post_delete.connect(_forget_key, sender=ApiKey, dispatch_uid="api_key_cache_forget_delete")
        # The cache entry also holds the project's request limit (and name): a changed project drops its keys.
        post_save.connect(_forget_project_keys, sender=Project, dispatch_uid="api_key_cache_forget_project")


def _forget_key(sender, instance, **kwargs):
    from tenancy.services import api_key_cache_forget

    api_key_cache_forget(key_hash=instance.key_hash)


def _forget_project_keys(sender, instance, created=False, **kwargs):
    if created:
        return
    from tenancy.services import api_key_cache_forget

    for key_hash in instance.api_keys.values_list("key_hash", flat=True):
        api_key_cache_forget(key_hash=key_hash)
