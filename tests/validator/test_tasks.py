"""The validation task's own decisions (run in-process): unexpected failures are ours, never silent."""

from __future__ import annotations

import pytest

from registry.models import AdapterVersion
from tests.registry.upload_helpers import adapter_files, hub_dirs, maintainer_setup, post_upload  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def version(client, hub_dirs):  # noqa: F811
    _, _, token = maintainer_setup()
    assert post_upload(client, adapter_files(seed=1), token=token).status_code == 201
    return AdapterVersion.objects.get()


def test_an_unexpected_error_ends_as_error_internal_error_not_stuck(version, settings, monkeypatch):
    from validator import jobs, tasks

    settings.HUB_VALIDATION_RETRIES = 0

    def broken(version_id, digest):
        jobs.lifecycle.start_validation(version_id, digest)
        raise OSError("the weights store went away")

    monkeypatch.setattr(jobs, "run_validation", broken)
    result = tasks.validate_version.apply(args=[version.pk, version.digest])
    assert result.result == "error"
    version.refresh_from_db()
    assert (version.status, version.error_code) == ("error", "internal_error")
    assert "the weights store went away" in version.validation_report["errors"][0]["detail"]


def test_a_platform_fault_is_retried_before_it_is_recorded(version, settings, monkeypatch):
    from celery.exceptions import Retry

    from validator import jobs, tasks
    from validator.errors import BackboneUnavailable

    settings.HUB_VALIDATION_RETRIES = 2
    monkeypatch.setattr(jobs, "run_validation", lambda *a: (_ for _ in ()).throw(BackboneUnavailable("gone")))
    with pytest.raises(Retry):
        tasks.validate_version.apply(args=[version.pk, version.digest], throw=True)
    version.refresh_from_db()
    assert version.status == "pending"  # not recorded: it will be tried again
