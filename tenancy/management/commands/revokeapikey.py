from django.core.management.base import BaseCommand, CommandError

from tenancy.services import api_key_revoke


class Command(BaseCommand):
    help = "Revoke an API key, given the key itself."

    def add_arguments(self, parser):
        parser.add_argument("key")

    def handle(self, *args, key: str, **options):
        if not api_key_revoke(raw=key):
            raise CommandError("No active key matches.")
        self.stdout.write("revoked")
