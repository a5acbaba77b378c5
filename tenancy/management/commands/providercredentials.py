"""Operators' command for a project's provider credentials: set, list (names only), delete, rotate."""

import json
import sys

from django.core.management.base import BaseCommand, CommandError
from django.db.models import Q

from tenancy.models import Project, ProviderCredential
from tenancy.services import provider_credential_delete, provider_credential_set, provider_credentials_rotate


def _project(ref: str) -> Project:
    project = Project.objects.filter(Q(name=ref) | Q(public_id=ref)).first()
    if project is None:
        raise CommandError(f"No project named (or with id) '{ref}'.")
    return project


def _value(raw: str):
    try:
        return json.loads(raw)
    except ValueError:
        return raw


class Command(BaseCommand):
    help = ("A project's own provider credentials (LiteLLM parameters per provider), stored encrypted. "
            "'set' reads values given as '-' from standard input, so keys stay out of the shell history.")

    def add_arguments(self, parser):
        sub = parser.add_subparsers(dest="action", required=True)
        set_ = sub.add_parser("set", help="store (replace) a provider's parameters for a project")
        set_.add_argument("--project", required=True, help="project name or id")
        set_.add_argument("--provider", required=True, help="LiteLLM provider: openai, anthropic, azure, …")
        set_.add_argument("--api-key", help="the provider key ('-': read it from standard input)")
        set_.add_argument("--param", action="append", default=[], metavar="NAME=VALUE",
                          help="another LiteLLM parameter (repeatable), e.g. aws_region_name=eu-west-1")
        list_ = sub.add_parser("list", help="list stored credentials (parameter names, never values)")
        list_.add_argument("--project", help="only this project (name or id)")
        delete = sub.add_parser("delete", help="delete a project's credentials for a provider")
        delete.add_argument("--project", required=True)
        delete.add_argument("--provider", required=True)
        sub.add_parser("rotate", help="re-encrypt everything under the first CREDENTIALS_ENCRYPTION_KEY")

    def handle(self, *args, action: str, **options):
        if action == "set":
            params = {}
            for item in options["param"]:
                name, sep, raw = item.partition("=")
                if not sep or not name.strip():
                    raise CommandError(f"--param expects NAME=VALUE, got '{name}'")
                params[name.strip().replace("-", "_")] = sys.stdin.readline().strip() if raw == "-" else _value(raw)
            if options["api_key"]:
                key = options["api_key"]
                params["api_key"] = sys.stdin.readline().strip() if key == "-" else key
            if not params:
                raise CommandError("Give --api-key and/or --param NAME=VALUE.")
            row = provider_credential_set(project=_project(options["project"]), provider=options["provider"],
                                          params=params)
            self.stdout.write(f"Stored {row.provider} credentials for project {row.project.name}: "
                              f"{', '.join(row.param_names)}")
        elif action == "list":
            rows = ProviderCredential.objects.select_related("project").order_by("project__name", "provider")
            if options["project"]:
                rows = rows.filter(project=_project(options["project"]))
            for row in rows:
                self.stdout.write(f"{row.project.name}\t{row.project.public_id}\t{row.provider}\t"
                                  f"{', '.join(row.param_names)}\t{row.updated_at:%Y-%m-%d %H:%M}")
        elif action == "delete":
            if not provider_credential_delete(project=_project(options["project"]), provider=options["provider"]):
                raise CommandError("No such credentials.")
            self.stdout.write("Deleted.")
        else:
            self.stdout.write(f"Re-encrypted {provider_credentials_rotate()} credential(s) under the first key.")
