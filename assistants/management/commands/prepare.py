"""What must happen once before web and worker processes start: the `migrate` step of a deployment."""

from django.core.management.base import BaseCommand, CommandError

from assistants_project.bootstrap import BootstrapError, prepare


class Command(BaseCommand):
    help = "Check the database (reachable, pgvector), apply migrations, ensure ASSISTANTS_API_KEY. Run it once " \
           "per deployment, before the web and worker processes (which do not migrate)."

    def handle(self, *args, **options):
        try:
            prepare(self.stdout)
        except BootstrapError as exc:
            raise CommandError(str(exc)) from None
        self.stdout.write("Database ready.")
