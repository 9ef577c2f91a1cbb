"""After commit the validation task is sent by name; a broker outage never fails an upload."""

from __future__ import annotations

import json
import os
import time

import pytest
from celery import Celery, current_app

from registry.choices import VALIDATE_VERSION_TASK, VersionStatus
from registry.models import AdapterVersion
from tests.services import free_port

from .upload_helpers import adapter_files, hub_dirs, maintainer_setup, post_upload  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.fixture
def celery_app_for(request):
    """Make a fresh Celery app with the given broker the current app for one test."""
    previous = current_app._get_current_object()
    made = []

    def make(broker_url: str, queue: str = "validation"):
        app = Celery("upload-test", broker=broker_url, set_as_current=False)
        app.conf.task_default_queue = queue
        app.conf.broker_connection_timeout = 1
        app.conf.broker_connection_retry = False
        app.set_current()
        made.append(app)
        return app

    yield make
    previous.set_current()
    for app in made:
        app.close()


def test_task_is_sent_by_name_after_commit(client, hub_dirs, redis_url, celery_app_for,  # noqa: F811
                                           django_capture_on_commit_callbacks):
    import redis

    queue = f"validation-test-{os.getpid()}"
    celery_app_for(redis_url, queue)
    broker = redis.Redis.from_url(redis_url)
    broker.delete(queue)
    _, _, raw = maintainer_setup()
    with django_capture_on_commit_callbacks(execute=True):
        response = post_upload(client, adapter_files(), raw)
    assert response.status_code == 201
    version = AdapterVersion.objects.get()
    assert broker.llen(queue) == 1
    message = json.loads(broker.lpop(queue))
    assert message["headers"]["task"] == VALIDATE_VERSION_TASK
    assert message["headers"]["argsrepr"] == repr([version.pk, version.digest])


def test_broker_down_still_answers_201_pending(client, hub_dirs, celery_app_for,  # noqa: F811
                                               django_capture_on_commit_callbacks, caplog):
    celery_app_for(f"redis://127.0.0.1:{free_port()}/0")
    _, _, raw = maintainer_setup()
    started = time.monotonic()
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        response = post_upload(client, adapter_files(), raw)
    assert len(callbacks) == 1
    assert response.status_code == 201, response.content
    assert response.json()["status"] == "pending"
    assert AdapterVersion.objects.get().status == VersionStatus.PENDING
    assert time.monotonic() - started < 20
    assert any("could not enqueue validation" in r.getMessage() for r in caplog.records)
