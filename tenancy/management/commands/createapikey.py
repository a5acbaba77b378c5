from django.core.management.base import BaseCommand

from tenancy.services import api_key_create, project_get_or_create


class Command(BaseCommand):
    help = "Create an API key for a project (created if missing) and print it once."

    def add_arguments(self, parser):
        parser.add_argument("--project", default="default", help="project name (default: default)")
        parser.add_argument("--name", default="", help="a label for the key")

    def handle(self, *args, project: str, name: str, **options):
        raw = api_key_create(project=project_get_or_create(name=project), name=name)
        self.stdout.write(raw)
