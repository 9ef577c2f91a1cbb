"""``manage.py hubtoken --user U --org O``: create what is missing and print one new API token.

Only the raw token goes to stdout (so ``TOKEN=$(manage.py hubtoken ...)`` works); every
message goes to stderr. Existing users, organisations and memberships are never changed.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from registry.choices import Role, TokenScope
from registry.models import Membership, Organisation, slug_validator
from registry.tokens import create_token


class Command(BaseCommand):
    help = "Create (when missing) a user, an organisation and a membership, then print a new API token."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True, help="username (created with no password when missing)")
        parser.add_argument("--org", required=True, help="organisation slug (created when missing)")
        parser.add_argument("--role", choices=Role.values, default=Role.MAINTAINER,
                            help="role for a new membership (default: maintainer)")
        parser.add_argument("--scope", choices=TokenScope.values, default=TokenScope.UPLOAD,
                            help="token scope (default: upload)")
        parser.add_argument("--expires-days", type=int, default=None, help="days until the token expires")
        parser.add_argument("--name", default="hubtoken", help="a label for the token")

    def note(self, message: str) -> None:
        self.stderr.write(message)

    @transaction.atomic
    def handle(self, *args, **options):
        try:
            slug_validator(options["org"])
        except ValidationError as exc:
            raise CommandError(f"invalid organisation slug {options['org']!r}: {exc.messages[0]}") from None
        if options["expires_days"] is not None and options["expires_days"] < 1:
            raise CommandError("--expires-days must be at least 1")
        user = self._user(options["user"])
        org, created = Organisation.objects.get_or_create(slug=options["org"], defaults={"name": options["org"]})
        if created:
            self.note(f"created organisation '{org.slug}'")
        self._membership(user, org, options["role"])
        token, raw = create_token(
            user, scope=options["scope"], organisations=[org], expires_days=options["expires_days"],
            name=options["name"],
        )
        expiry = token.expires_at.isoformat() if token.expires_at else "never"
        self.note(
            f"token {token.prefix}... for '{user.username}' in '{org.slug}', scope {token.scope}, expires {expiry}"
        )
        self.stdout.write(raw)

    def _user(self, username: str):
        model = get_user_model()
        user = model.objects.filter(username=username).first()
        if user is None:
            user = model(username=username)
            user.set_unusable_password()
            user.save()
            self.note(f"created user '{username}' (no password; set one with 'manage.py changepassword')")
        elif not user.is_active:
            raise CommandError(f"user '{username}' is disabled")
        return user

    def _membership(self, user, org, role: str) -> None:
        existing = Membership.objects.filter(user=user, organisation=org).first()
        if existing is None:
            Membership.objects.create(user=user, organisation=org, role=role)
            self.note(f"added '{user.username}' to '{org.slug}' as {role}")
        elif existing.role != role:
            self.note(
                f"warning: '{user.username}' is already {existing.role} of '{org.slug}'; the role is left unchanged"
            )
