"""Wait until a validation worker answers on the broker (the run command's --check uses it).

    python manage.py workerping [--timeout 120]
"""

from __future__ import annotations

import time

from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Send validator.ping through the broker and wait for a worker's answer."

    def add_arguments(self, parser):
        parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait (default 120)")

    def handle(self, *args, timeout, **options):
        from hubsite.celery import app
        from validator.tasks import PING_TASK

        started = time.monotonic()
        try:
            result = app.send_task(PING_TASK).get(timeout=timeout)
        except Exception as exc:  # noqa: BLE001 - broker and backend errors are many types
            raise CommandError(f"no worker answered within {timeout:.0f} s: {type(exc).__name__}: {exc}") from None
        if result != "pong":
            raise CommandError(f"unexpected answer {result!r}")
        self.stderr.write(f"a worker answered in {time.monotonic() - started:.1f} s")
