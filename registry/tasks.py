"""Periodic registry tasks (run by ``celery -A hubsite beat``). Thin: each calls one service."""

from celery import shared_task

from .services import lifecycle


@shared_task(name="registry.sweep_stale_versions")
def sweep_stale_versions() -> int:
    return lifecycle.sweep_stale_versions()


@shared_task(name="registry.sweep_orphan_objects")
def sweep_orphan_objects() -> int:
    from .services.orphans import sweep_orphan_objects as sweep

    return sweep()
