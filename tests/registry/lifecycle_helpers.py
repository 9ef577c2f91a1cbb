"""Minimal ORM set-up for the lifecycle tests (independent of the API factories)."""

import hashlib
import itertools

from django.contrib.auth import get_user_model

from registry.models import Adapter, AdapterVersion, Organisation, Subtask, Task

_seq = itertools.count()


def make_version(status="pending", **fields) -> AdapterVersion:
    n = next(_seq)
    org = Organisation.objects.create(slug=f"life-org-{n}")
    task = Task.objects.create(slug=f"life-task-{n}", name="Task")
    subtask = Subtask.objects.create(task=task, slug="sub", name="Sub")
    adapter = Adapter.objects.create(
        organisation=org, task=task, subtask=subtask, model_name="tiny-bert", model_type="bert",
        method="seq_bn", config={"architecture": "bottleneck"}, config_hash="0" * 16,
    )
    user = get_user_model().objects.create(username=f"life-user-{n}")
    return AdapterVersion.objects.create(
        adapter=adapter, version="1", status=status, digest=hashlib.sha256(str(n).encode()).hexdigest(),
        uploaded_by=user, **fields,
    )
