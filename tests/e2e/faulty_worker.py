"""A Celery validation worker that misbehaves on purpose, for the fault tests (never product code).

``python -m tests.e2e.faulty_worker worker -Q QUEUE ...`` patches ``validator.jobs.check_version`` and then
runs the worker of ``hubsite.celery`` programmatically. The faults come from the environment:

- ``E2E_FAULTS``: JSON, model_name -> ``"kill-always"`` | ``"kill-once"`` | ``"slow"``. A kill is SIGKILL to
  the process running the job (the prefork pool child), after the version was claimed (mid-validation).
  ``kill-once`` kills the first attempt of each version only (a marker file per version under
  ``E2E_FAULT_MARKERS``); ``slow`` sleeps ``E2E_FAULT_SLEEP`` seconds before the checks.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import sys
import time
from pathlib import Path

log = logging.getLogger("faulty_worker")


def first_time(marker_dir: Path, key: str) -> bool:
    """True exactly once per ``key`` across processes (an exclusively created marker file)."""
    marker_dir.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(marker_dir / key, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return False
    return True


def faulty(original, faults: dict, marker_dir: Path, sleep_seconds: float):
    """``check_version`` wrapped with the faults for the chosen model names."""

    def check_version(version):
        mode = faults.get(version.adapter.model_name)
        if mode not in (None, "kill-always", "kill-once", "slow"):
            raise ValueError(f"unknown fault mode {mode!r}")
        if mode == "kill-always" or (mode == "kill-once" and first_time(marker_dir, f"version-{version.pk}")):
            log.warning("FAULT: SIGKILL to pid %s during version %s (attempt %s)", os.getpid(), version.pk,
                        version.attempts)
            logging.shutdown()
            os.kill(os.getpid(), signal.SIGKILL)
        if mode == "slow":
            log.warning("FAULT: sleeping %ss during version %s", sleep_seconds, version.pk)
            time.sleep(sleep_seconds)
        return original(version)

    return check_version


def main(argv: list) -> None:
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hubsite.settings.test")
    import django

    django.setup()
    from validator import jobs

    faults = json.loads(os.environ.get("E2E_FAULTS", "{}"))
    marker_dir = Path(os.environ.get("E2E_FAULT_MARKERS", "/tmp/e2e-fault-markers"))
    jobs.check_version = faulty(jobs.check_version, faults, marker_dir, float(os.environ.get("E2E_FAULT_SLEEP", "30")))
    from hubsite.celery import app

    app.worker_main(argv)


if __name__ == "__main__":
    main(sys.argv[1:])
