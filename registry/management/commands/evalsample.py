"""Attach an evaluation sample to a subtask: the held-out pairs every fitting version is scored on.

    python manage.py evalsample sentiment/rotten-tomatoes held_out.jsonl --source "Rotten Tomatoes, held-out split"

The file holds one JSON object per line (or one JSON list) with ``text`` and ``label``; labels are the
names the adapters' heads use (``label2id``) or integer ids.
"""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from ...models import Subtask

MAX_SAMPLES = 20000


def read_samples(path: Path) -> list:
    text = path.read_text(encoding="utf-8")
    try:
        rows = json.loads(text) if text.lstrip().startswith("[") else [
            json.loads(line) for line in text.splitlines() if line.strip()]
    except ValueError as exc:
        raise CommandError(f"{path}: not JSON lines or a JSON list: {exc}") from None
    samples = []
    for number, row in enumerate(rows, 1):
        if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
            raise CommandError(f"{path}: item {number} needs a string 'text' and a 'label'")
        label = row["label"]
        if isinstance(label, bool) or not isinstance(label, (str, int)):
            raise CommandError(f"{path}: item {number}: a label is a name or an integer id, got {label!r}")
        samples.append({"text": row["text"], "label": label})
    if not samples:
        raise CommandError(f"{path} holds no samples")
    if len(samples) > MAX_SAMPLES:
        raise CommandError(f"{path} holds {len(samples)} samples; at most {MAX_SAMPLES}")
    return samples


class Command(BaseCommand):
    help = "Attach an evaluation sample (text/label pairs) to a subtask for verified scores."

    def add_arguments(self, parser):
        parser.add_argument("subtask", help="task/subtask, e.g. sentiment/rotten-tomatoes")
        parser.add_argument("file", help="JSON lines (or a JSON list) of {text, label}")
        parser.add_argument("--source", default="", help="where the sample comes from (shown with scores)")
        parser.add_argument("--metric", default=None, help="the subtask's metric (accuracy or f1)")

    def handle(self, *args, subtask, file, source, metric, **options):
        task_slug, _, subtask_slug = subtask.partition("/")
        found = Subtask.objects.filter(task__slug=task_slug, slug=subtask_slug).first()
        if found is None:
            raise CommandError(f"no subtask {subtask!r} (load the standard tasks first: manage.py loaddata "
                               f"standard_tasks)")
        path = Path(file)
        if not path.is_file():
            raise CommandError(f"no file {file}")
        found.evaluation_sample = read_samples(path)
        found.evaluation_source = source or found.evaluation_source
        if metric:
            found.metric_name = metric
        found.save()
        self.stderr.write(f"{found.path}: {len(found.evaluation_sample)} evaluation samples "
                          f"({found.metric_name or 'accuracy'})")
