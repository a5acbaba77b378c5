"""Operators' view of projects and API keys."""

from __future__ import annotations

import json

from django import forms
from django.contrib import admin, messages
from django.db.models import QuerySet
from django.utils import timezone

from tenancy import credentials
from tenancy.models import ApiKey, Project, ProviderCredential, hash_key
from tenancy.services import api_key_cache_forget, api_key_create


@admin.register(Project)
class ProjectAdmin(admin.ModelAdmin):
    list_display = ["name", "public_id", "created_at", "requests_per_minute", "concurrent_runs", "tokens_per_day"]
    search_fields = ["name", "public_id"]
    readonly_fields = ["public_id", "created_at"]
    fieldsets = [(None, {"fields": ["name", "public_id", "created_at"]}),
                 ("Limits (empty: the deployment's RATE_LIMIT_* default; 0: unlimited)",
                  {"fields": ["requests_per_minute", "concurrent_runs", "tokens_per_day"]})]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    """Only the hash is stored: the raw key is shown once, in a message right after it is created."""

    list_display = ["prefix", "name", "project", "created_at", "last_used_at", "revoked_at"]
    list_filter = ["project", ("revoked_at", admin.EmptyFieldListFilter), "created_at"]
    search_fields = ["name", "prefix", "project__name", "project__public_id"]
    actions = ["revoke"]

    def get_fields(self, request, obj=None):
        return ["project", "name"] if obj is None else ["project", "name", "prefix", "created_at", "last_used_at",
                                                        "revoked_at"]

    def get_readonly_fields(self, request, obj=None):
        return [] if obj is None else ["project", "prefix", "created_at", "last_used_at"]

    def save_model(self, request, obj, form, change):
        if change:
            super().save_model(request, obj, form, change)
            return
        raw = api_key_create(project=obj.project, name=obj.name)
        obj.pk = ApiKey.objects.only("pk").get(key_hash=hash_key(raw)).pk
        obj.refresh_from_db()
        self.message_user(request, f"The new API key (shown only this once; copy it now): {raw}", messages.WARNING)

    @admin.action(description="Revoke the selected keys", permissions=["change"])
    def revoke(self, request, queryset: QuerySet[ApiKey]) -> None:
        keys = dict(queryset.filter(revoked_at__isnull=True).values_list("pk", "key_hash"))
        count = ApiKey.objects.filter(pk__in=keys, revoked_at__isnull=True).update(revoked_at=timezone.now())
        for key_hash in keys.values():  # update() sends no signal: drop the cached keys, or they work a minute more
            api_key_cache_forget(key_hash=key_hash)
        self.message_user(request, f"Revoked {count} key(s).")


class ProviderCredentialForm(forms.ModelForm):
    """Write-only: the values are never rendered back. On change, empty fields keep what is stored."""

    api_key = forms.CharField(required=False, strip=True, widget=forms.PasswordInput(render_value=False),
                              help_text="The provider key. Left empty on change: the stored key stays.")
    other_params = forms.CharField(
        required=False, widget=forms.Textarea(attrs={"rows": 3}), label="Other parameters",
        help_text='A JSON object of further LiteLLM parameters, e.g. {"aws_region_name": "eu-west-1"}. Replaces '
                  "the stored ones (except the key) when given; left empty on change: they stay.")

    class Meta:
        model = ProviderCredential
        fields = ["project", "provider"]

    def clean_other_params(self) -> dict | None:
        raw = self.cleaned_data.get("other_params", "").strip()
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            raise forms.ValidationError("Not valid JSON.") from None
        if not isinstance(value, dict):
            raise forms.ValidationError("Expected a JSON object.")
        return value

    def clean(self):
        data = super().clean()
        assert data is not None  # ModelForm.clean returns cleaned_data
        if self.instance.pk is None and not data.get("api_key") and not data.get("other_params"):
            raise forms.ValidationError("Give an API key or other parameters.")
        return data

    def params(self) -> dict:
        old = credentials.decrypt(self.instance.sealed) if self.instance.pk else {}
        key = self.cleaned_data.get("api_key") or old.get("api_key")
        other = self.cleaned_data.get("other_params")
        params = {k: v for k, v in old.items() if k != "api_key"} if other is None else dict(other)
        return {**params, **({"api_key": key} if key else {})}


@admin.register(ProviderCredential)
class ProviderCredentialAdmin(admin.ModelAdmin):
    form = ProviderCredentialForm
    list_display = ["project", "provider", "names", "updated_at"]
    list_filter = ["provider"]
    search_fields = ["project__name", "project__public_id", "provider"]
    readonly_fields = ["names", "created_at", "updated_at"]

    @admin.display(description="Parameters stored (values never shown)")
    def names(self, obj) -> str:
        return ", ".join(obj.param_names or [])

    def get_fields(self, request, obj=None):
        base = ["project", "provider", "api_key", "other_params"]
        return base if obj is None else [*base, "names", "created_at", "updated_at"]

    def save_model(self, request, obj, form, change):
        params = form.params()
        obj.sealed, obj.param_names = credentials.encrypt(params), sorted(params)
        super().save_model(request, obj, form, change)

    def construct_change_message(self, request, form, formsets, add=False):
        # the admin's history records which fields changed, never their values; say no more than that
        return [{"changed": {"fields": ["credentials"]}}] if not add else [{"added": {}}]
