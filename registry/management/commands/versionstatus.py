"""Set a version's status by hand (operators; the end-to-end check "resolvable once valid").

    python manage.py versionstatus sentiment/sst-2@demo 1 --status valid [--model-name bert-base-uncased]
"""

from django.core.management.base import BaseCommand, CommandError

from adapters_client.errors import InvalidIdentifier
from adapters_client.identifiers import AdapterId

from ...choices import VersionStatus
from ...models import AdapterVersion
from ...services.lifecycle import set_status


class Command(BaseCommand):
    help = "Set the status of an adapter version (valid, rejected, error, pending)."

    def add_arguments(self, parser):
        parser.add_argument("identifier", help="task/subtask@org")
        parser.add_argument("version")
        parser.add_argument("--status", required=True, choices=VersionStatus.values)
        parser.add_argument("--model-name", help="the backbone, when the identifier has several")
        parser.add_argument("--reason", default="", help="recorded in the validation report")

    def handle(self, *args, identifier, version, status, model_name, reason, **options):
        try:
            ident = AdapterId.parse(identifier)
        except InvalidIdentifier as exc:
            raise CommandError(str(exc)) from None
        if ident.org is None:
            raise CommandError("give the organisation: task/subtask@org")
        versions = AdapterVersion.objects.filter(
            adapter__task__slug=ident.task, adapter__subtask__slug=ident.subtask,
            adapter__organisation__slug=ident.org, version=version,
        )
        if model_name:
            versions = versions.filter(adapter__model_name=model_name)
        found = list(versions.select_related("adapter"))
        if not found:
            raise CommandError(f"no version {version!r} of {ident}")
        if len(found) > 1:
            names = ", ".join(sorted({v.adapter.model_name for v in found}))
            raise CommandError(f"{ident}=={version} exists for several backbones ({names}): pass --model-name")
        report = {"set_by": "versionstatus", "reason": reason} if reason else None
        set_status(found[0], status, report)
        self.stderr.write(f"{ident}=={version} [{found[0].adapter.model_name}] is now {status}")
