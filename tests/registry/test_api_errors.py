"""Error format {"code", "detail"} and throttling (429 with Retry-After)."""

from __future__ import annotations

import pytest
from rest_framework.settings import api_settings
from rest_framework.throttling import AnonRateThrottle, UserRateThrottle

from .factories import clear_cache, make_adapter, make_user  # noqa: F401

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "method,path,status,code",
    [
        ("get", "/api/v1/adapters/12345", 404, "not_found"),
        ("get", "/api/v1/adapters?sort=sideways", 400, "invalid_input"),
        ("get", "/api/v1/resolve?id=UPPER/case", 400, "invalid_identifier"),
        ("get", "/api/v1/resolve?id=a/b", 404, "adapter_not_found"),
        ("post", "/api/v1/adapters/1/default-version", 401, "not_authenticated"),
        ("put", "/api/v1/adapters", 405, "method_not_allowed"),
    ],
)
def test_errors_are_json_with_a_stable_code(client, method, path, status, code):
    response = getattr(client, method)(path)
    assert response.status_code == status
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["code"] == code and isinstance(body["detail"], str) and body["detail"]


@pytest.fixture
def tiny_rates(monkeypatch):
    rates = {**api_settings.DEFAULT_THROTTLE_RATES, "anon": "2/min", "user": "3/min"}
    monkeypatch.setattr(AnonRateThrottle, "THROTTLE_RATES", rates)
    monkeypatch.setattr(UserRateThrottle, "THROTTLE_RATES", rates)


def test_anonymous_throttled_with_retry_after(client, tiny_rates):
    statuses = [client.get("/api/v1/tasks").status_code for _ in range(3)]
    assert statuses == [200, 200, 429]
    response = client.get("/api/v1/tasks")
    assert response.json()["code"] == "throttled"
    assert 1 <= int(response["Retry-After"]) <= 60


def test_signed_in_users_have_their_own_budget(client, tiny_rates):
    client.force_login(make_user())
    statuses = [client.get("/api/v1/tokens").status_code for _ in range(4)]
    assert statuses == [200, 200, 200, 429]


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/adapters/{pk}/versions/%00", "/api/v1/adapters/{pk}/versions/a%01b", "/api/v1/tasks/%00",
        "/api/v1/organisations/a%00", "/api/v1/adapters/99999999999999999999999",
    ],
)
def test_control_characters_in_paths_are_404_not_500(client, path):
    response = client.get(path.format(pk=make_adapter().pk))
    assert response.status_code == 404


@pytest.mark.parametrize("query", ["id=a/b%00", "id=a/b&version=%00", "id=a/b&model_name=%00", "id=a/b&config=%00"])
def test_nul_in_query_parameters_is_400(client, query):
    response = client.get(f"/api/v1/resolve?{query}")
    assert response.status_code == 400 and response.json()["code"] in {"invalid_input", "invalid_identifier"}
