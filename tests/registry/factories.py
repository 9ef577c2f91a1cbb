"""Plain factory functions for registry tests (no factory library), plus shared fixtures."""

from __future__ import annotations

import hashlib
import itertools
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.utils import timezone

from registry.choices import Role, VersionStatus, Visibility
from registry.models import Adapter, AdapterVersion, Membership, Organisation, Subtask, Task, VersionFile
from registry.tokens import create_token

_seq = itertools.count(1)


@pytest.fixture(autouse=True)
def clear_cache():
    """Cached API answers must never leak from one test into the next."""
    cache.clear()
    yield
    cache.clear()


def make_user(username: str | None = None, **extra):
    username = username or f"user{next(_seq)}"
    return get_user_model().objects.create_user(username=username, password="pw-" + username, **extra)


def make_org(slug: str | None = None, *, member=None, role: str = Role.MAINTAINER, **extra) -> Organisation:
    org = Organisation.objects.create(slug=slug or f"org{next(_seq)}", name=extra.pop("name", slug or ""), **extra)
    if member is not None:
        Membership.objects.create(organisation=org, user=member, role=role)
    return org


def make_task_subtask(task: str = "sentiment", subtask: str = "sst-2", **subtask_fields) -> Subtask:
    task_row, _ = Task.objects.get_or_create(slug=task, defaults={"name": task.title()})
    defaults = {"name": subtask.upper(), **subtask_fields}
    sub, _ = Subtask.objects.get_or_create(task=task_row, slug=subtask, defaults=defaults)
    return sub


def make_adapter(
    org: Organisation | None = None, subtask: Subtask | None = None, *, model_name: str = "bert-base-uncased",
    method: str = "seq_bn", config_hash: str | None = None, visibility: str = Visibility.PUBLIC, **extra,
) -> Adapter:
    org = org or make_org()
    subtask = subtask or make_task_subtask()
    config_hash = config_hash or hashlib.sha1(f"{method}{next(_seq)}".encode()).hexdigest()[:16]
    return Adapter.objects.create(
        organisation=org, task=subtask.task, subtask=subtask, model_name=model_name,
        model_type=extra.pop("model_type", model_name.split("-")[0]), method=method,
        config=extra.pop("config", {"architecture": method}), config_hash=config_hash, visibility=visibility,
        **extra,
    )


def make_version(
    adapter: Adapter, version: str = "1", *, status: str = VersionStatus.VALID, files=("adapter.safetensors",),
    age_minutes: int = 0, **extra,
) -> AdapterVersion:
    """A version with ``files`` (names); ``age_minutes`` pushes created_at into the past."""
    created = timezone.now() - timedelta(minutes=age_minutes)
    row = AdapterVersion.objects.create(
        adapter=adapter, version=version, status=status, digest=hashlib.sha256(version.encode()).hexdigest(),
        created_at=created, **extra,
    )
    for name in files:
        data = f"{adapter.pk}/{version}/{name}".encode()
        VersionFile.objects.create(
            version=row, name=name, size=len(data), sha256=hashlib.sha256(data).hexdigest(),
            storage_key=f"test/{hashlib.sha256(data).hexdigest()}",
        )
    return row


def make_token(user, **kwargs) -> str:
    """Create a token and return the raw value."""
    return create_token(user, **kwargs)[1]


def bearer(raw: str) -> dict:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw}"}
