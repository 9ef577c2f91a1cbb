import pytest

from registry.models import Task

pytestmark = pytest.mark.django_db


def test_home_page_lists_tasks_and_links_the_api(client):
    task = Task.objects.create(slug="sentiment", name="Sentiment Analysis")
    task.subtasks.create(slug="sst-2", name="SST-2")
    response = client.get("/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "Sentiment Analysis" in body and "sentiment/sst-2" in body
    assert "/api/docs/" in body


def test_healthz(client):
    assert client.get("/healthz").json() == {"status": "ok"}


def test_api_docs_page_serves_swagger_ui_from_local_static_files(client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    body = response.content.decode()
    assert "swagger-ui" in body
    assert "cdn.jsdelivr" not in body and "unpkg.com" not in body
