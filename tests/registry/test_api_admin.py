"""The admin pages of the registry render for a superuser."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from .factories import clear_cache, make_adapter, make_token, make_version  # noqa: F401

pytestmark = pytest.mark.django_db


def test_admin_pages_render(client):
    admin = get_user_model().objects.create_superuser("root", "root@example.org", "pw")
    adapter = make_adapter()
    version = make_version(adapter)
    make_token(admin)
    client.force_login(admin)
    for name in ["organisation", "task", "subtask", "adapter", "adapterversion", "apitoken"]:
        assert client.get(f"/admin/registry/{name}/").status_code == 200, name
    assert client.get(f"/admin/registry/adapter/{adapter.pk}/change/").status_code == 200
    page = client.get(f"/admin/registry/adapterversion/{version.pk}/change/")
    assert page.status_code == 200 and b"adapter.safetensors" in page.content
