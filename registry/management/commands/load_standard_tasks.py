"""``manage.py load_standard_tasks``: add the standard tasks and subtasks, matched by slug.

Unlike ``loaddata standard_tasks`` (which writes fixed primary keys), this never overwrites
rows that happen to share a primary key; existing tasks keep their text unless --update.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand
from django.db import transaction

from registry.models import Subtask, Task

FIXTURE = Path(__file__).resolve().parents[2] / "fixtures" / "standard_tasks.json"


class Command(BaseCommand):
    help = "Create the standard tasks and subtasks that are missing (by slug)."

    def add_arguments(self, parser):
        parser.add_argument("--update", action="store_true", help="also rewrite the text of existing rows")

    @transaction.atomic
    def handle(self, *args, update: bool = False, **options):
        rows = json.loads(FIXTURE.read_text())
        tasks = {r["pk"]: r["fields"] for r in rows if r["model"] == "registry.task"}
        created = 0
        by_pk = {}
        for pk, fields in tasks.items():
            by_pk[pk], new = self._upsert(Task.objects, {"slug": fields["slug"]}, fields, update)
            created += new
        for row in (r for r in rows if r["model"] == "registry.subtask"):
            fields = {**row["fields"], "task": by_pk[row["fields"]["task"]]}
            _, new = self._upsert(Subtask.objects, {"task": fields["task"], "slug": fields["slug"]}, fields, update)
            created += new
        self.stdout.write(f"{created} created, {len(rows) - created} already present")

    @staticmethod
    def _upsert(manager, lookup: dict, fields: dict, update: bool):
        defaults = {k: v for k, v in fields.items() if k not in lookup}
        if update:
            obj, new = manager.update_or_create(**lookup, defaults=defaults)
        else:
            obj, new = manager.get_or_create(**lookup, defaults=defaults)
        return obj, int(new)
