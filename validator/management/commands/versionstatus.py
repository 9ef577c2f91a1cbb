"""Set a version's status by hand (operators).

    python manage.py versionstatus sentiment/sst-2@demo 1 --status valid [--model-name bert-base-uncased]

``--status valid`` runs the validator's checks first and refuses a version they reject (the report is
stored when they pass); ``--skip-checks --reason TEXT`` marks it valid without them, recorded in the report.
"""

from django.core.management.base import BaseCommand, CommandError

from adapters_client.errors import InvalidIdentifier
from adapters_client.identifiers import AdapterId
from registry.choices import VersionStatus
from registry.models import AdapterVersion
from registry.services.lifecycle import set_status


class Command(BaseCommand):
    help = "Set the status of an adapter version (valid, rejected, error, pending)."
    requires_system_checks = []  # frees --skip-checks for the validator's checks

    def add_arguments(self, parser):
        parser.add_argument("identifier", help="task/subtask@org")
        parser.add_argument("version")
        parser.add_argument("--status", required=True, choices=VersionStatus.values)
        parser.add_argument("--model-name", help="the backbone, when the identifier has several")
        parser.add_argument("--reason", default="", help="recorded in the validation report")
        # our own --skip-checks (the validator's checks): Django's system-check flag of that name is off here
        parser.add_argument("--skip-checks", dest="skip_validation", action="store_true",
                            help="with --status valid: do not run the checks (needs --reason; recorded)")

    def handle(self, *args, identifier, version, status, model_name, reason, skip_validation, **options):
        skip_checks = skip_validation
        if skip_checks and not reason.strip():
            raise CommandError("--skip-checks needs --reason TEXT (it is recorded in the validation report)")
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
        target = found[0]
        report = {"set_by": "versionstatus", "reason": reason} if reason else None
        if status == VersionStatus.VALID:
            report = self._checked_report(target, skip_checks, reason)
        set_status(target, status, report)
        self.stderr.write(f"{ident}=={version} [{target.adapter.model_name}] is now {status}")

    def _checked_report(self, version, skip_checks: bool, reason: str) -> dict:
        if skip_checks:
            return {"set_by": "versionstatus", "skipped_checks": True, "reason": reason}
        from validator.errors import PlatformFault
        from validator.jobs import check_version

        try:
            outcome = check_version(version)
        except PlatformFault as exc:
            raise CommandError(f"the checks could not run ({exc.code}): {exc}") from None
        if outcome.status != VersionStatus.VALID:
            codes = ", ".join(c["code"] for c in outcome.report.get("checks", []) if c.get("code")
                              and c.get("outcome") == "failed") or outcome.error_code
            raise CommandError(f"the checks reject this version ({codes}); it stays "
                               f"{version.status}. Use --skip-checks --reason TEXT to override.")
        if outcome.verified_score is not None:
            version.verified_score = outcome.verified_score
        return {**outcome.report, "set_by": "versionstatus", **({"reason": reason} if reason else {})}
